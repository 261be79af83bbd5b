"""The CDK app that deploys DRAMAC to AWS (``cdk.json`` runs ``infra.app``)."""
