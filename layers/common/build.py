"""Builds the shared Lambda layer into ``build/layer/`` without Docker.

``build/layer/python/`` gets ``dramac_common`` (from ``layers/common/python``) and the project's
runtime dependencies (``[project] dependencies`` of pyproject.toml, never the dev extras) as wheels
for Lambda's platform: CPython 3.13 on arm64 Amazon Linux 2023 (glibc 2.34, so manylinux 2.17 and
2.28 wheels both run). ``--only-binary=:all:`` makes pip refuse anything it would have to compile
here for the wrong machine. Run it with ``make layer`` before ``cdk deploy``; synth without it
ships the source-only layer and warns.

Usage: python layers/common/build.py [--out build/layer] [--python-version 3.13]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).resolve().parent / "python"
DEFAULT_OUT = ROOT / "build" / "layer"
PYTHON_VERSION = "3.13"  # the functions' runtime: infra/backend_stack.py RUNTIME
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    with pyproject.open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def pip_command(target: Path, requirements: list[str], python_version: str) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(target), "--implementation", "cp", "--python-version", python_version,
               "--only-binary=:all:", "--upgrade", "--no-compile"]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    return command + requirements


def build(out: Path = DEFAULT_OUT, python_version: str = PYTHON_VERSION) -> Path:
    target = out / "python"
    if out.exists():
        shutil.rmtree(out)
    target.mkdir(parents=True)
    subprocess.run(pip_command(target, runtime_requirements(), python_version), check=True)  # noqa: S603 - our own pip command line
    shutil.copytree(SOURCE / "dramac_common", target / "dramac_common",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # Console scripts are of no use in a layer and name the build machine's interpreter.
    shutil.rmtree(target / "bin", ignore_errors=True)
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"layer built in {out} ({size / 1_048_576:.1f} MB unzipped; Lambda allows 250 MB)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--python-version", default=PYTHON_VERSION)
    args = parser.parse_args(argv)
    build(args.out, args.python_version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
