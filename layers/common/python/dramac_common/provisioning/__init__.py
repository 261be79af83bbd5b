"""Database-per-module provisioning (EM-11): the manifest model, its validation, the DDL planner and
the provisioner that applies it.

- ``manifest``: pydantic models of ``modules_v2.manifest`` and ``validate_manifest`` (no SQL runs
  before a manifest validates);
- ``column_types`` and ``expressions``: the allow-listed column types and the small expression
  grammar (defaults, checks, index predicates), re-emitted with ``psycopg.sql``;
- ``ddl``: compiles a validated schema definition against the catalog's current state into one
  ``psycopg.sql.Composed`` script (create, or additive upgrade; destructive changes are refused);
- ``provisioner``: runs a job in one transaction under a per-module advisory lock.

Submodules are imported by name, so a function pays only for what it uses.
"""
