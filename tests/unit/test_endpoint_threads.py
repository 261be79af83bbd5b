"""Where a sync endpoint runs: in place under Mangum (its event loop serves that one request, so a
thread-pool hop would only cost a new OS thread), in the thread pool under an ASGI server (whose
shared loop a blocking endpoint must not stall)."""

import json
import threading
from typing import Annotated

from dramac_common.core.api import create_app, envelope, lambda_handler
from dramac_common.core.inplace import call_blocking
from fastapi import Depends, Query
from fastapi.testclient import TestClient

from dramac_dev.events import LocalContext, http_event


async def loop_thread() -> str:
    return threading.current_thread().name  # a coroutine dependency runs on the event loop's thread


async def blocking_thread() -> str:
    return await call_blocking(lambda: threading.current_thread().name)  # as current_principal verifies a key


def _app():
    app = create_app("threads")

    @app.get("/where")
    def where(loop: Annotated[str, Depends(loop_thread)], blocking: Annotated[str, Depends(blocking_thread)],
              label: Annotated[str, Query(max_length=10)] = "x"):
        return envelope({"inLoopThread": threading.current_thread().name == loop, "blockingInLoopThread": blocking == loop,
                         "label": label})

    return app


def test_sync_endpoint_runs_in_place_under_mangum():
    reply = lambda_handler(_app(), service="threads")(http_event("GET", "/where", query={"label": "lambda"}),
                                                       LocalContext("threads"))
    assert reply["statusCode"] == 200
    assert json.loads(reply["body"])["data"] == {"inLoopThread": True, "blockingInLoopThread": True, "label": "lambda"}


def test_sync_endpoint_runs_in_the_thread_pool_under_an_asgi_server():
    with TestClient(_app()) as client:
        reply = client.get("/where", params={"label": "asgi"})
    assert reply.status_code == 200
    assert reply.json()["data"] == {"inLoopThread": False, "blockingInLoopThread": False, "label": "asgi"}


def test_endpoint_parameters_are_still_validated_in_place():
    reply = lambda_handler(_app(), service="threads")(http_event("GET", "/where", query={"label": "x" * 11}),
                                                       LocalContext("threads"))
    assert reply["statusCode"] == 400
