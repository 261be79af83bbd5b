"""Benchmark 6: domain router decisions per second in process, and its cold import time."""

from __future__ import annotations

import json
import os
import time

from .common import ROOT, Section, median, run_python, us

RUNS = int(os.environ.get("BENCH_ROUTER_RUNS", "7"))

_IMPORT_PROBE = r"""
import time  # the working directory is the function's folder, first on the path: the code root
t0 = time.perf_counter()
import app
print(time.perf_counter() - t0)
"""
_BARE_PROBE = "import time; t0 = time.perf_counter(); import json; print(time.perf_counter() - t0)"


def run(env: dict[str, str]) -> Section:
    from dramac_dev.events import LocalContext
    from dramac_dev.functions_loader import get_handler

    os.environ.setdefault("DRAMAC_ROUTER_LOCAL", "1")
    handler = get_handler("domain_router")
    events = [json.loads(p.read_text()) for p in sorted((ROOT / "events" / "domain_router").glob("*.json"))]
    context = LocalContext("domain_router", timeout_s=5)
    for event in events:
        handler(json.loads(json.dumps(event)), context)  # warm: config loaded, caches filled
    per_request = []
    for _ in range(RUNS):
        copies = [json.loads(json.dumps(e)) for e in events for _ in range(200)]
        start = time.perf_counter()
        for event in copies:
            handler(event, context)
        per_request.append((time.perf_counter() - start) / len(copies))
    decision = median(per_request)
    folder = ROOT / "functions" / "domain_router"
    imports = [float(run_python(_IMPORT_PROBE, cwd=folder, env=env)) for _ in range(RUNS)]
    section = Section("6. Domain router", "make bench (bench/domain_router.py)", ["measure", "value"])
    section.rows += [
        ["per decision (all sample events, in process)", us(decision)],
        ["decisions per second (one core)", f"{1 / decision:,.0f}"],
        ["cold import of app.py (fresh process)", f"{median(imports) * 1000:.1f} ms"],
    ]
    section.notes.append(f"{len(events)} sample events × 200, median of {RUNS} runs; the target is under 60 ms cold")
    return section
