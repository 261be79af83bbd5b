"""Developer tooling: the ``dramac`` CLI, the local stack, the embedded PostgreSQL and the route table."""
