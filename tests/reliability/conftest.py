"""Fixtures of the reliability suite (the shared pieces live in ``reliability_world``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from automation_helpers import aws, receiver  # noqa: F401 - fixtures shared with the integration tests
from reliability_world import World, build_world


@pytest.fixture
def world(owner_conn, make_module, make_tenant, aws, receiver, env, request) -> World:  # noqa: F811
    from dramac_common.core.settings import reset_settings

    # completing a sandbox checkout delivers its webhook over HTTP: here, to the recording receiver
    env.set("SANDBOX_WEBHOOK_URL", f"{receiver.url}/api/webhooks/paddle")
    reset_settings()
    request.addfinalizer(reset_settings)
    return build_world(owner_conn, make_module, make_tenant, aws, receiver)
