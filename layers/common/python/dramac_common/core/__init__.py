"""The kernel every capability uses: settings, database units of work, the API factory and error
envelope, who is calling, tenancy, queues, naming, migrations, JSON bodies, idempotency.

It imports nothing outside ``core``. Modules are imported by name; this file imports nothing.
"""
