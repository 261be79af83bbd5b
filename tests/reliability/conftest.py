"""Fixtures of the reliability suite (the shared pieces live in ``support.world``)."""

from __future__ import annotations

import pytest
from support.world import World, build_world


@pytest.fixture
def world(owner_conn, make_module, make_tenant, aws, receiver, env) -> World:
    # completing a sandbox checkout delivers its webhook over HTTP: here, to the recording receiver
    env.set("SANDBOX_WEBHOOK_URL", f"{receiver.url}/api/webhooks/paddle")
    return build_world(owner_conn, make_module, make_tenant, aws, receiver)
