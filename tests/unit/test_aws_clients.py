"""The capabilities' AWS clients: each made once per container, whatever threads ask at the same moment,
and all forgotten together when an emulation or the endpoints change."""

from __future__ import annotations

import threading

import moto  # noqa: F401 - before any client exists (tests/support/aws.py)
from dramac_common.automation import steps, vault
from dramac_common.core import aws, queues, storage
from support.aws import emulated_aws


def test_threads_asking_at_once_share_one_client(monkeypatch) -> None:
    made: list[str] = []
    real_client = aws.client

    def counting_client(service: str, **options: object) -> object:
        made.append(service)
        return real_client(service, **options)

    monkeypatch.setattr(aws, "client", counting_client)
    lazy = aws.LazyClient("sqs", lambda: {"region_name": "us-east-1"})
    start = threading.Barrier(8)
    seen: list[object] = []

    def first_use() -> None:
        start.wait()
        seen.append(lazy())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["sqs"]
    assert len({id(client) for client in seen}) == 1


def test_reset_clients_forgets_every_capability_and_its_queue_urls() -> None:
    with emulated_aws():
        before = [queues.sqs_client(), storage.s3_client(), vault.kms_client(), steps.ses_client()]
        queues.queue_url(queues.EVENTS)
        assert queues._urls
        aws.reset_clients()
        assert not queues._urls
        after = [queues.sqs_client(), storage.s3_client(), vault.kms_client(), steps.ses_client()]
    assert all(old is not new for old, new in zip(before, after, strict=True))
