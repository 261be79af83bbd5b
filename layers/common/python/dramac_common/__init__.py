"""DRAMAC shared Lambda layer: a kernel (``core``) and one package per capability.

- ``core``: settings, database units of work, the API factory, errors, who is calling (``auth``),
  tenancy, queues, naming, migrations, JSON bodies and the Idempotency-Key store. It imports
  nothing outside ``core``.
- ``agencies``: an agency's team (owners, admins, members) and client users.
- ``marketplace``: the published catalogue and free subscriptions.
- ``payments``: paid modules: purchase with markup, checkouts, the Paddle webhook.
- ``installations``: modules installed on sites, and the sites' API keys.
- ``provisioning``: module manifests and the schemas they become.
- ``module_data``: the module data API's SDK and widget storage.
- ``automation``: the event outbox, workflows, and the engine that runs them.

``tests/unit/test_layering.py`` checks these rules. Modules are imported by name
(``from dramac_common.core import db``); package files import nothing, so a function pays at cold
start only for what it uses.
"""
