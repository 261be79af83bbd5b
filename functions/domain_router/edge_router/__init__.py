"""The domain router: the Lambda@Edge viewer-request function's logic, standard library only.

- ``routing``: the decision for one request (site rewrite, public path, session, onboarding);
- ``hosts``, ``paths``: normalising and classifying the Host header and the path;
- ``session``, ``tokens``, ``p256``: the session cookie and its JWT, verified without dependencies
  (RS256, ES256 and, in a local bundle only, HS256);
- ``cloudfront``: CloudFront's request and response shapes;
- ``defaults``, ``config``: the settings, from the bundled ``config.json``;
- ``local``: the local development settings (never bundled).

A bundle (``bundle.py``) ships this package beside ``app.py`` and ``config.json``, without ``local``.
"""
