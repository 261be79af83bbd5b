"""`make bench`: runs every benchmark against a fresh database and writes BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import datetime
import importlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import ROOT, machine

BENCHMARKS = ["cold_start", "warm_latency", "provisioning", "rls_read", "automation_throughput", "domain_router",
              "rest_read", "retention"]


def _seed(url: str) -> None:
    """The demo data, its events sent into an emulated queue (never towards AWS), then forgotten."""
    from dramac_common.core import aws, queues
    from dramac_common.core.settings import get_settings
    from moto import mock_aws

    from dramac_dev.seed import seed_demo
    from dramac_dev.sqs_local import create_queues

    with mock_aws():
        aws.reset_clients()
        create_queues(queues.sqs_client(), get_settings().queue_prefix)
        seed_demo(url)
    aws.reset_clients()


def main(argv: list[str]) -> int:
    from dramac_common.core.migrate import apply_migrations
    from dramac_common.core.settings import reset_settings

    from dramac_dev import localdb

    if "--quick" in argv:  # smaller scale figures (provisioning counts, RLS rows) for a fast look
        os.environ["BENCH_QUICK"] = "1"
    if "--full" in argv:  # the 10,000-schema scale of the provisioning benchmark (adds 15-30 minutes)
        os.environ["BENCH_FULL"] = "1"
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
        _seed(url)
        env = {"DATABASE_URL": url, "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_METRICS_DISABLED": "1",
               "POWERTOOLS_LOG_LEVEL": "WARNING", "DRAMAC_ROUTER_LOCAL": "1"}
        sections = []
        invocation = "make bench" + (f" ARGS='{' '.join(argv)}'" if argv else "")
        commit = _commit()
        begun = time.perf_counter()
        for number, bench in enumerate(selected, 1):
            started = time.perf_counter()
            print(f"[{number}/{len(selected)}] {bench} … (total so far {started - begun:.0f} s)", file=sys.stderr,
                  flush=True)
            module = importlib.import_module(f"bench.{bench}")
            with contextlib.redirect_stdout(sys.stderr):  # handlers' metric lines are not the report
                section = module.run(env)
            took = time.perf_counter() - started
            day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
            section.command = f"{invocation} (bench/{bench}.py); commit {commit}, {day}, took {took:.0f} s"
            sections.append(section)
            print(f"[{number}/{len(selected)}] {bench} done in {took:.1f} s", file=sys.stderr, flush=True)
    finally:
        from dramac_common.core import db

        db.close_pool()
        localdb.drop_database(server, name)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = ["# Benchmarks", "",
            f"Written by `make bench` ({' '.join(['python -m bench.run', *argv]).strip()}) on {now}; each "
            "section names the command, commit and time of its own run (a run of some benchmarks replaces "
            "only their sections).", "",
            f"Machine: {machine()}.", "",
            "Every figure is a median of repeated runs, with a baseline measured in the same run beside it, "
            "so ratios hold on a noisy machine.", ""]
    merged = _merged(sections, (ROOT / "BENCHMARKS.md"), replace_all=selected == BENCHMARKS)
    text += ["## Goals at a glance", "",
             "The issue's goals beside each figure, counted per section (the analysis of the ones not met, and "
             "their floors, is in docs/performance.md):", ""]
    text += [f"- {title}: {verdict}" for title, verdict in _goal_summary(merged)] + [""]
    text += merged
    (ROOT / "BENCHMARKS.md").write_text("\n".join(text))
    print((ROOT / "BENCHMARKS.md").read_text())
    return 0


def _goal_summary(blocks: list[str]) -> list[tuple[str, str]]:
    """Per section: how many table cells say a goal is met, and which rows do not meet theirs."""
    out = []
    for block in blocks:
        title = block.splitlines()[0][3:].strip()
        met, missed = 0, []
        for line in block.splitlines():
            if not line.startswith("| ") or line.startswith("| ---"):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            verdicts = re.findall(r"\b(not met|met)\b", " ".join(cells[1:]))
            met += sum(1 for v in verdicts if v == "met")
            if "not met" in verdicts:
                missed.append(cells[0])
        if met or missed:
            out.append((title, f"{met} met, {len(missed)} not met" + (f" ({'; '.join(missed)})" if missed else "")))
    return out


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)BENCHMARKS.md", ":(exclude)docs"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted changes" if dirty else "")


def _merged(sections: list[Any], existing: Path, *, replace_all: bool) -> list[str]:
    """The new sections, plus (unless every benchmark ran) the other numbered sections of the existing file,
    and always its unnumbered ones: figures measured by a command of their own (``python -m bench.rate_limit``),
    which this run does not make."""
    blocks: dict[str, str] = {}
    if existing.exists():
        for chunk in re.split(r"(?m)^(?=## )", existing.read_text())[1:]:
            title = chunk.splitlines()[0][3:].strip()
            if title == "Goals at a glance":  # rebuilt
                continue
            if not title[:1].isdigit() or not replace_all:
                blocks[title] = chunk.rstrip() + "\n"
    for section in sections:
        blocks[section.title] = section.markdown()

    def order(title: str) -> tuple[int, str]:
        number = title.split(".", 1)[0]
        return (int(number) if number.isdigit() else 99, title)

    return [blocks[title] for title in sorted(blocks, key=order)]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
