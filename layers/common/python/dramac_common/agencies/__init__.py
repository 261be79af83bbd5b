"""Agencies: their team (owners, admins, members) and client users (docs/roles.md)."""
