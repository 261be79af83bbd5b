"""Benchmark 6: domain router decisions per second in process, and its cold import time.

Per-decision time is the process's CPU time (``time.process_time``), not the wall clock: on a shared
machine the wall clock counts the time other processes hold the core, and a decision never waits on
anything but the CPU (no I/O). The baseline, measured in the same run, is a handler that forwards the
request untouched: the floor of being called with a CloudFront event at all.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from base64 import urlsafe_b64encode

from .common import ROOT, Section, median, run_python, us

RUNS = int(os.environ.get("BENCH_ROUTER_RUNS", "7"))
GOAL_PER_SECOND = 200_000

_IMPORT_PROBE = r"""
import time  # the working directory is the function's folder, first on the path: the code root
t0 = time.perf_counter()
import app
print(time.perf_counter() - t0)
"""


def _forward_untouched(event: dict, context: object) -> dict:
    request: dict = event["Records"][0]["cf"]["request"]
    return request


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def _session_event(template: dict) -> dict:
    """The protected-path sample with a valid local session cookie (HS256, the dev secret)."""
    from dramac_common.core.settings import DEV_JWT_ISSUER, DEV_JWT_SECRET

    claims = {"sub": "5f0c5a7e-0000-4000-8000-000000000001", "aud": "authenticated", "iss": DEV_JWT_ISSUER,
              "exp": int(time.time()) + 3600}
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    secret = os.environ.get("DRAMAC_JWT_SECRET") or DEV_JWT_SECRET
    token = f"{signing_input}.{_b64(hmac.digest(secret.encode(), signing_input.encode(), 'sha256'))}"
    event = json.loads(json.dumps(template))
    event["Records"][0]["cf"]["request"]["headers"]["cookie"] = [
        {"key": "Cookie", "value": f"theme=dark; sb-access-token={token}"}]
    return event


def _per_decision(handler, events: list[dict], context: object) -> float:
    """Median CPU seconds per call over RUNS passes of 200 fresh copies of each event."""
    for event in events:
        handler(json.loads(json.dumps(event)), context)  # warm: config loaded, caches filled
    samples = []
    for _ in range(RUNS):
        copies = [json.loads(json.dumps(e)) for e in events for _ in range(200)]
        start = time.process_time()
        for event in copies:
            handler(event, context)
        samples.append((time.process_time() - start) / len(copies))
    return median(samples)


def run(env: dict[str, str]) -> Section:
    from dramac_dev.events import LocalContext
    from dramac_dev.functions_loader import get_handler

    os.environ.setdefault("DRAMAC_ROUTER_LOCAL", "1")
    handler = get_handler("domain_router")
    files = sorted((ROOT / "events" / "domain_router").glob("*.json"))
    events = [json.loads(p.read_text()) for p in files]
    context = LocalContext("domain_router", timeout_s=5)
    decision = _per_decision(handler, events, context)
    baseline = _per_decision(_forward_untouched, events, context)
    protected = next(e for p, e in zip(files, events, strict=True) if "protected" in p.name)
    signed_in = _session_event(protected)
    assert handler(json.loads(json.dumps(signed_in)), context)["uri"] == "/dashboard/sites", "session refused"
    with_session = _per_decision(handler, [signed_in], context)
    folder = ROOT / "functions" / "domain_router"
    imports = [float(run_python(_IMPORT_PROBE, cwd=folder, env=env)) for _ in range(RUNS)]
    rate = 1 / decision
    section = Section("6. Domain router", "make bench (bench/domain_router.py)", ["measure", "value", "goal"])
    section.rows += [
        ["per decision (all sample events, in process, CPU time)", us(decision), ""],
        ["decisions per second (one core)", f"{rate:,.0f}",
         f"≥ {GOAL_PER_SECOND:,} ({'met' if rate >= GOAL_PER_SECOND else 'not met'})"],
        ["*baseline: a handler that forwards the request untouched*", us(baseline), ""],
        ["signed-in request to a protected path (session cookie, token cache warm)", us(with_session), ""],
        ["cold import of app.py (fresh process)", f"{median(imports) * 1000:.1f} ms", "< 60 ms"],
    ]
    section.notes.append(f"{len(events)} sample events × 200 fresh copies, median of {RUNS} runs, CPU time "
                         "(time.process_time: the wall clock on a shared machine counts other processes)")
    return section
