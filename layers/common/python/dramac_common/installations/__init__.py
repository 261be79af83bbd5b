"""Sites and what they run: modules installed on sites (``site_modules``) and the sites' API keys
(``api_keys``: created, rotated, revoked by a site's managers; verified in ``core.auth``).

Modules are imported by name; this file imports nothing.
"""
