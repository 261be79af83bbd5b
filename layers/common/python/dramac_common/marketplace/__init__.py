"""The module marketplace: the published catalogue and agencies' subscriptions to free modules
(``catalog``). Paid modules are bought through ``payments``.

Modules are imported by name; this file imports nothing.
"""
