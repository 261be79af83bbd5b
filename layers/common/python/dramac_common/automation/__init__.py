"""The automation engine: event registry, filters, templates, step types, execution engine and its SQL.

- ``registry``: which event types exist (documented ones and those installed modules declare).
- ``filters``: subscription filters and the comparison operators the ``condition`` step shares.
- ``templates``: ``{{event.payload.x}}``, ``{{steps.N.output.y}}``, ``{{variables.z}}``.
- ``steps``: each step type's config validation and executor.
- ``engine``: events → executions → steps, exactly once per (event, workflow).
- ``workflows``: the automation API's rules (create, update, list, executions, webhooks).
- ``relay``: the outbox relay and the sweep of executions whose queue message was lost.
- ``dal``: the SQL of the automation tables.

Modules are imported by name; this file imports nothing.
"""
