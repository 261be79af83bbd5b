"""`make bench`: runs every benchmark against a fresh database and writes BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import datetime
import importlib
import os
import sys
import time

from .common import ROOT, machine

BENCHMARKS = ["cold_start", "warm_latency", "provisioning", "rls_read", "automation_throughput", "domain_router",
              "retention"]


def main(argv: list[str]) -> int:
    from dramac_common.core.migrate import apply_migrations
    from dramac_common.core.settings import reset_settings

    from dramac_dev import localdb

    if "--quick" in argv:  # smaller scale figures (provisioning counts, RLS rows) for a fast look
        os.environ["BENCH_QUICK"] = "1"
    selected = [a for a in argv if not a.startswith("--")] or BENCHMARKS
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "1")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    server = localdb.server_url()
    name, url = localdb.create_database(server, prefix="dramac_bench")
    try:
        apply_migrations(url)
        os.environ["DATABASE_URL"] = url
        reset_settings()
        from dramac_dev.seed import seed_demo

        seed_demo(url)
        env = {"DATABASE_URL": url, "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_METRICS_DISABLED": "1",
               "POWERTOOLS_LOG_LEVEL": "WARNING", "DRAMAC_ROUTER_LOCAL": "1"}
        sections = []
        for bench in selected:
            started = time.perf_counter()
            print(f"running {bench} …", file=sys.stderr, flush=True)
            module = importlib.import_module(f"bench.{bench}")
            with contextlib.redirect_stdout(sys.stderr):  # handlers' metric lines are not the report
                sections.append(module.run(env))
            print(f"  {bench} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    finally:
        from dramac_common.core import db

        db.close_pool()
        localdb.drop_database(server, name)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = ["# Benchmarks", "",
            f"Written by `make bench` ({' '.join(['python -m bench.run', *argv]).strip()}) on {now}.", "",
            f"Machine: {machine()}.", "",
            "Every figure is a median of repeated runs, with a baseline measured in the same run beside it, "
            "so ratios hold on a noisy machine.", ""]
    text += [s.markdown() for s in sections]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(text))
    print((ROOT / "BENCHMARKS.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
