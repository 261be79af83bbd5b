"""Benchmark 1: cold start of every function against a hello-world FastAPI + Mangum handler and a
bare Python handler, each in a fresh process answering its first event (database already up)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .common import ROOT, Section, median, ms, ratio, run_python

RUNS = int(os.environ.get("BENCH_COLD_RUNS", "5"))

_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import importlib.util
spec = importlib.util.spec_from_file_location("bench_app", {path!r})
mod = importlib.util.module_from_spec(spec); sys.modules["bench_app"] = mod; spec.loader.exec_module(mod)
t1 = time.perf_counter()
class Context:
    function_name = "bench"; function_version = "$LATEST"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"; aws_request_id = "bench"
    def get_remaining_time_in_millis(self): return 30000
event = json.load(open({event!r})) if {event!r} else None
result = mod.handler(event, Context()) if event is not None else None
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "first": t2 - t1, "total": t2 - t0,
                  "status": (result or {{}}).get("statusCode") or (result or {{}}).get("status")}}))
"""

_HELLO_FASTAPI = '''
from fastapi import FastAPI
from mangum import Mangum
app = FastAPI()
@app.get("/api/health")
def health():
    return {"success": True, "data": {"status": "ok"}}
handler = Mangum(app, lifespan="off")
'''

_BARE = '''
import json
def handler(event, context):
    return {"statusCode": 200, "body": json.dumps({"success": True, "data": {"status": "ok"}})}
'''


def _baseline_files(tmp: Path) -> dict[str, Path]:
    files = {}
    for name, code in (("hello-world FastAPI + Mangum", _HELLO_FASTAPI), ("bare Python handler", _BARE)):
        folder = tmp / name.split()[0].replace("-", "_")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "app.py").write_text(code)
        files[name] = folder / "app.py"
    return files


def _first_event(function: str) -> str:
    events = sorted((ROOT / "events" / function).glob("*.json"))
    preferred = [e for e in events if "health" in e.name]
    return str((preferred or events or [Path("")])[0]) if events else ""


def _measure(path: Path, event: str, env: dict[str, str]) -> dict[str, float]:
    samples = []
    for _ in range(RUNS):
        out = run_python(_PROBE.format(folder=str(path.parent), path=str(path), event=event), cwd=ROOT, env=env)
        samples.append(json.loads(out.strip().splitlines()[-1]))
    return {k: median([s[k] for s in samples]) for k in ("import", "first", "total")}


def _import_breakdown(path: Path, env: dict[str, str], top: int = 8) -> list[tuple[str, float]]:
    """The heaviest packages by cumulative import time (``python -X importtime``, one run)."""
    import subprocess

    code = "import app"  # run in the function's folder: the code root, first on the path (-c)
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=path.parent, capture_output=True,
                            text=True, env={**os.environ, **env}, check=True)
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not cumulative.strip().isdigit():
            continue
        package = name.strip().split(".")[0]
        if package != "app":
            totals[package] = max(totals.get(package, 0.0), int(cumulative) / 1e6)
    return sorted(totals.items(), key=lambda r: r[1], reverse=True)[:top]


def run(env: dict[str, str]) -> Section:
    import tempfile

    section = Section(
        "1. Cold start",
        "make bench (bench/cold_start.py)",
        ["handler", "import", "first event", "total", "vs FastAPI+Mangum", "vs bare"],
    )
    functions = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
    with tempfile.TemporaryDirectory() as tmp:
        baselines = {name: _measure(path, str(ROOT / "events" / "subscribe" / "health.json"), env) for name, path in _baseline_files(Path(tmp)).items()}
    hello = baselines["hello-world FastAPI + Mangum"]["total"]
    bare = baselines["bare Python handler"]["total"]
    for name, m in baselines.items():
        section.rows.append([f"*{name}*", ms(m["import"]), ms(m["first"]), ms(m["total"]),
                             ratio(m["total"], hello), ratio(m["total"], bare)])
    heaviest = None
    for function in functions:
        path = ROOT / "functions" / function / "app.py"
        event = _first_event(function)
        m = _measure(path, event, env)
        section.rows.append([function if event else f"{function} (no sample event: import only)", ms(m["import"]),
                             ms(m["first"]) if event else "–", ms(m["total"]), ratio(m["total"], hello),
                             ratio(m["total"], bare)])
        if function != "domain_router" and (heaviest is None or m["import"] > heaviest[1]):
            heaviest = (function, m["import"])
    section.notes.append(f"median of {RUNS} fresh processes each; 'first event' is the function's first sample "
                         "event in events/<name>/ (health where there is one), database already up")
    if heaviest:
        breakdown = _import_breakdown(ROOT / "functions" / heaviest[0] / "app.py", env)
        section.notes.append(f"heaviest imports of `{heaviest[0]}` (cumulative, one run): "
                             + ", ".join(f"{n} {ms(t)}" for n, t in breakdown))
    return section
