"""Firing one request N times at the same instant against the real handlers and PostgreSQL.

``fire(n, call)`` runs ``call(i)`` in ``n`` threads that wait on one ``threading.Barrier`` and
returns what each call returned (or raised), in index order. The ``parallel_pool`` fixture gives the
process a connection pool as large as the burst, so the N transactions really overlap in the database
the way N Lambda containers (one pool each) would.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

BURST = 10


def fire(n: int, call: Callable[[int], Any], *, timeout_s: float = 60) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = call(index)
        except BaseException as exc:  # reported to the test, which asserts on it
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    stuck = [i for i, thread in enumerate(threads) if thread.is_alive()]
    assert not stuck, f"requests {stuck} did not finish within {timeout_s} s (deadlock?)"
    raised = [r for r in results if isinstance(r, BaseException)]
    assert not raised, f"a request raised: {raised[0]!r}"
    return results


def statuses(replies: list[Any]) -> Counter:
    return Counter(r.status for r in replies)


def no_server_errors(replies: list[Any]) -> None:
    failed = [(r.status, r.body) for r in replies if r.status >= 500]
    assert not failed, f"{len(failed)} of {len(replies)} answered 5xx, e.g. {failed[0]}"
