"""Benchmark 1: cold start as AWS will see it: every function against a hello-world FastAPI + Mangum
handler built and packaged the same way, each in a fresh process of the runtime's Python version
answering its first event, once with the layer as `make layer` ships it (bytecode) and once without
bytecode (sources only, as the layer was before).

The layer is built by ``layers/common/build.py`` itself, with this machine's wheels (``--platform host``)
for the runtime's Python version, and run by an interpreter of that version (``build.find_interpreter``):
``-I`` (no environment paths, no user site), ``-B`` (nothing written: ``/opt`` is read-only in Lambda),
the function's folder then the layer first on ``sys.path`` as in Lambda. Without that interpreter the
benchmark falls back to this one and says so. Processes run interleaved (run 1 of every handler and
variant, then run 2...), so load on a shared machine spreads over all of them; the ratio to the
hello-world of the same variant is on CPU time (the process's own, from the first import to the
first response), which other processes on the machine do not inflate.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from dramac_dev.routes import ROUTES

from .common import ROOT, Section, median, ms, ratio

RUNS = int(os.environ.get("BENCH_COLD_RUNS", "3"))
GOAL = 1.2
LAYER_CACHE = ROOT / "build" / "bench-layer"

_PROBE = r"""
import json, sys, time
sys.path[:0] = [{folder!r}, {layer!r}]  # as in Lambda: the function's code, then the layer (/opt/python)
t0, c0 = time.perf_counter(), time.process_time()
import importlib.util
spec = importlib.util.spec_from_file_location("app", {path!r})
mod = importlib.util.module_from_spec(spec); sys.modules["app"] = mod; spec.loader.exec_module(mod)
t1 = time.perf_counter()
class Context:
    function_name = "bench"; function_version = "$LATEST"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"; aws_request_id = "bench"
    def get_remaining_time_in_millis(self): return 30000
event = json.load(open({event!r})) if {event!r} else None
result = mod.handler(event, Context()) if event is not None else None
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({{"import": t1 - t0, "first": t2 - t1, "total": t2 - t0, "cpu": c2 - c0,
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


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dramac_layer_build", ROOT / "layers" / "common" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _layers(build: ModuleType) -> tuple[str, str, dict[str, Path], str]:
    """(interpreter, its version, {variant: layer's python/ folder}, note). The third-party part is built once
    per requirements and version (``build/bench-layer``); dramac_common is copied fresh on every run."""
    interpreter = build.find_interpreter(build.PYTHON_VERSION)
    version = build.PYTHON_VERSION
    note = f"Python {version} ({interpreter}), the runtime's version"
    if interpreter is None:
        interpreter, version = sys.executable, f"{sys.version_info[0]}.{sys.version_info[1]}"
        note = (f"no Python {build.PYTHON_VERSION} on this machine: measured with Python {version}, whose imports "
                "differ from the runtime's")
    key = hashlib.sha256(json.dumps([build.runtime_requirements(), version, build.host_platforms()]).encode())
    base = LAYER_CACHE / key.hexdigest()[:12]
    if not (base / "python" / "dramac_common").is_dir():
        build.build(base, version, bytecode=False, platforms=build.host_platforms())
    layers = {}
    for variant in ("source", "bytecode"):
        target = LAYER_CACHE / f"run-{variant}" / "python"
        if target.parent.exists():
            shutil.rmtree(target.parent)
        shutil.copytree(base / "python", target, ignore=shutil.ignore_patterns("dramac_common", "__pycache__"))
        shutil.copytree(ROOT / "layers" / "common" / "python" / "dramac_common", target / "dramac_common",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        layers[variant] = target
    build.compile_bytecode(layers["bytecode"], interpreter)
    return interpreter, version, layers, note


# The module data API's own work is a module's rows, not its API keys (the first list by name).
_FIRST_LIST = {"module_api": "list_contacts.json"}


def _first_event(function: str) -> str:
    """The sample event a cold start answers: health where there is one, else a list (a GET that succeeds).

    The same answer on every run: a write's sample event creates on the first run and conflicts on the next
    (catalog's add_version answered 201, then 409), so runs would measure different work.
    """
    events = sorted((ROOT / "events" / function).glob("*.json"))
    for preferred in ("health", _FIRST_LIST.get(function, "list_")):
        chosen = [e for e in events if e.name.startswith(preferred) and _method(e) == "GET"
                  and not re.search(r"_\d{3}\.json$", e.name)]
        if chosen:
            return str(chosen[0])
    return str(events[0]) if events else ""


def _method(event: Path) -> str:
    body = json.loads(event.read_text())
    return str(body.get("httpMethod") or body.get("requestContext", {}).get("http", {}).get("method") or "")


def _probe(interpreter: str, path: Path, layer: Path, event: str, env: dict[str, str]) -> dict[str, float]:
    code = _PROBE.format(folder=str(path.parent), layer=str(layer), path=str(path), event=event)
    # The migrate function finds migrations/ beside itself when bundled; here, in the repository. The relay
    # leaves alone what other handlers' first events committed during the run (their after-commit sends find no
    # queue here): on a loaded machine the run outlasts its 60 s grace, and it would send them towards AWS.
    # AWS_LAMBDA_FUNCTION_NAME: Lambda sets it, and the layer serves a container's requests from one connection.
    env = {**os.environ, **env, "DRAMAC_MIGRATIONS_DIR": str(ROOT / "migrations"),
           "AUTOMATION_RELAY_GRACE_SECONDS": "86400", "AWS_LAMBDA_FUNCTION_NAME": "bench"}
    result = subprocess.run([interpreter, "-I", "-B", "-c", code], cwd=path.parent, env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"cold start of {path} failed:\n{result.stderr[-2000:]}")
    sample: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return sample


def _import_breakdown(interpreter: str, path: Path, layer: Path, env: dict[str, str],
                      top: int = 8) -> list[tuple[str, float]]:
    """The heaviest packages by cumulative import time (``-X importtime``, one run, with bytecode)."""
    code = f"import sys; sys.path[:0] = [{str(path.parent)!r}, {str(layer)!r}]; import app"
    result = subprocess.run([interpreter, "-I", "-B", "-X", "importtime", "-c", code], cwd=path.parent,
                            capture_output=True, text=True, env={**os.environ, **env}, check=True)
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
    build = _build_module()
    interpreter, _, layers, note = _layers(build)
    section = Section(
        "1. Cold start",
        "make bench (bench/cold_start.py)",
        ["handler", "without bytecode: import + first event", "CPU", "vs hello", "with bytecode (as shipped)",
         "CPU", "vs hello", f"goal ≤ {GOAL}× hello"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        hello_path = Path(tmp) / "hello" / "app.py"
        hello_path.parent.mkdir()
        hello_path.write_text(_HELLO_FASTAPI)
        handlers = [("*hello-world FastAPI + Mangum*", hello_path, str(ROOT / "events" / "subscribe" / "health.json"))]
        for function in sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py")):
            event = _first_event(function)
            label = function if event else f"{function} (no sample event: import only)"
            handlers.append((label, ROOT / "functions" / function / "app.py", event))
        samples: dict[tuple[str, str], list[dict[str, float]]] = {}
        for _ in range(RUNS):  # interleaved: every handler and variant once per round
            for label, path, event in handlers:
                for variant, layer in layers.items():
                    samples.setdefault((label, variant), []).append(_probe(interpreter, path, layer, event, env))
    figures = {key: {k: median([s[k] for s in values]) for k in ("total", "cpu")} for key, values in samples.items()}
    statuses = {key: {s.get("status") for s in values} for key, values in samples.items()}
    hello = handlers[0][0]
    http_functions = {route.function for route in ROUTES} - {"domain_router"}  # API Gateway's, not the edge's
    met: list[str] = []
    missed: list[str] = []
    for label, _, _ in handlers:
        source, compiled = figures[(label, "source")], figures[(label, "bytecode")]
        vs_source = compiled_vs = ""
        if label != hello:
            vs_source = ratio(source["cpu"], figures[(hello, "source")]["cpu"])
            compiled_vs = ratio(compiled["cpu"], figures[(hello, "bytecode")]["cpu"])
        goal = ""
        if label in http_functions:  # the goal is the HTTP functions' (API Gateway routes)
            within = (compiled["cpu"] <= GOAL * figures[(hello, "bytecode")]["cpu"]
                      and source["cpu"] <= GOAL * figures[(hello, "source")]["cpu"])
            goal = "met" if within else "not met"
            (met if within else missed).append(label)
        section.rows.append([label, ms(source["total"]), ms(source["cpu"]), vs_source or "1.00×",
                             ms(compiled["total"]), ms(compiled["cpu"]), compiled_vs or "1.00×", goal])
    hello_speedup = figures[(hello, "source")]["cpu"] / figures[(hello, "bytecode")]["cpu"]
    section.notes += [
        f"{note}; the layer built by layers/common/build.py (--platform host), then run from it with `-I -B`; "
        f"median of {RUNS} fresh processes per handler and variant, interleaved; 'import + first event' is wall "
        "time from the first import to the first response (a sample event of events/<name>/ that answers the same "
        "on every run: health where there is one, else a list, the module data API's contacts; database already "
        "up), CPU the process's own time over the same span",
        f"bytecode makes the hello-world's cold start {hello_speedup:.1f}× faster (CPU); ratios are to the "
        "hello-world of the same variant; the domain router is a Lambda@Edge function without the layer",
        f"HTTP functions within {GOAL}× of the hello-world in both variants: {len(met)} of {len(met) + len(missed)}"
        + (f" (not: {', '.join(missed)})" if missed else ""),
    ]
    odd = {label: sorted(map(str, s)) for (label, _), s in statuses.items() if len(s) > 1}
    if odd:
        section.notes.append(f"first responses differed between runs: {odd}")
    section.notes.append("first responses: " + ", ".join(
        f"{label.strip('*')} {'/'.join(sorted(map(str, statuses[(label, 'bytecode')])))}" for label, _, _ in handlers))
    heaviest = max((label for label, _, _ in handlers[1:] if "domain_router" not in label),
                   key=lambda label: figures[(label, "bytecode")]["cpu"])
    breakdown = _import_breakdown(interpreter, ROOT / "functions" / heaviest / "app.py", layers["bytecode"], env)
    section.notes.append(f"heaviest imports of `{heaviest}` with bytecode (cumulative, one run): "
                         + ", ".join(f"{n} {ms(t)}" for n, t in breakdown))
    return section
