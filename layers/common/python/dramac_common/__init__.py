"""DRAMAC shared Lambda layer: settings, database units of work, tenancy, naming, errors, API and queues.

Modules are imported by name (``from dramac_common import db``); this package file imports nothing,
so a function pays at cold start only for what it uses.
"""
