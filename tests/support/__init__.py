"""What the suites share, as plain modules (``from support.handlers import FunctionClient``); the
fixtures built on them live in the ``conftest.py`` files.

- ``handlers``: claims for a user, and a client that invokes a function's real Lambda handler;
- ``aws``: moto with the project's queues and a verified SES sender: the one way tests emulate AWS;
- ``tenants``: an agency with its people and a site;
- ``modules``: a CRM-like module installed and provisioned by the product itself;
- ``automation``, ``purchase``: records, events and servers those suites need;
- ``world``, ``concurrency``, ``hostile_input``: the reliability suite's two agencies, bursts and values;
- ``manifests``, ``catalog_lint``: generated manifests, and the catalog checks splinter makes.
"""
