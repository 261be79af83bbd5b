"""Builds the shared Lambda layer into ``build/layer/`` without Docker.

``build/layer/python/`` gets ``dramac_common`` (from ``layers/common/python``) and the project's
runtime dependencies (``[project] dependencies`` of pyproject.toml, never the dev extras) as wheels
for Lambda's platform: CPython 3.13 on arm64 Amazon Linux 2023 (glibc 2.34, so manylinux 2.17 and
2.28 wheels both run). ``--only-binary=:all:`` makes pip refuse anything it would have to compile
here for the wrong machine. Run it with ``make layer`` before ``cdk deploy``; synth without it
ships the source-only layer and warns.

The layer ships bytecode compiled by an interpreter of the runtime's exact version (3.13): ``/opt``
is read-only in Lambda, so a layer without ``__pycache__`` compiles every module it imports from
source on every cold start (about 3x slower imports; BENCHMARKS.md, section 1). A ``.pyc`` is only
valid for the minor version that wrote it, so the build looks for that interpreter (``--python``,
``DRAMAC_LAYER_PYTHON``, ``python3.13`` on the PATH, pyenv's, uv's) and refuses to build without it
unless ``--no-bytecode`` says so. The files are written with ``--invalidation-mode unchecked-hash``:
valid whatever the timestamps an asset zip gives the sources, never re-checked (the layer is
immutable).

Usage: python layers/common/build.py [--out build/layer] [--python-version 3.13] [--python PATH]
       [--no-bytecode] [--platform lambda|host]
"""

from __future__ import annotations

import argparse
import glob
import os
import platform as host
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
INTERPRETER_ENV = "DRAMAC_LAYER_PYTHON"


class BuildError(RuntimeError):
    """The layer cannot be built as asked (no interpreter of the runtime's version for its bytecode)."""


def host_platforms() -> tuple[str, ...]:
    """Wheel platforms of this machine (the cold-start benchmark builds a layer it can run)."""
    machine = host.machine().lower()
    arch = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine, machine)
    return (f"manylinux2014_{arch}", f"manylinux_2_28_{arch}")


def interpreter_version(python: str) -> str | None:
    """``major.minor`` of an interpreter, or None when it does not run."""
    try:
        result = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],  # noqa: S603
                                capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def find_interpreter(python_version: str = PYTHON_VERSION, explicit: str | None = None) -> str | None:
    """An interpreter of exactly ``python_version``: the one named (``--python`` or DRAMAC_LAYER_PYTHON), else
    ``python<version>`` on the PATH, pyenv's or uv's, else this one if it is that version."""
    named = explicit or os.environ.get(INTERPRETER_ENV)
    if named:
        return named if interpreter_version(named) == python_version else None
    candidates = [shutil.which(f"python{python_version}")]
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", f"{python_version}.*", "bin",
                                                f"python{python_version}")), reverse=True)
    uv = shutil.which("uv")
    if uv:
        try:
            found = subprocess.run([uv, "python", "find", "--no-python-downloads", python_version],  # noqa: S603
                                   capture_output=True, text=True, timeout=60)
            candidates.append(found.stdout.strip() if found.returncode == 0 else None)
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.append(sys.executable)
    for candidate in candidates:
        if candidate and interpreter_version(candidate) == python_version:
            return candidate
    return None


def compile_command(target: Path, python: str) -> list[str]:
    """Byte-compile everything under ``target`` with ``python``, hash-based and never re-checked."""
    return [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(target)]


def compile_bytecode(target: Path, python: str) -> int:
    """Compile the layer; returns how many ``.pyc`` files it holds. Files that are not valid Python of that
    version (test data some packages ship) are skipped, as pip's own compile step skips them."""
    subprocess.run(compile_command(target, python), check=False, capture_output=True)  # noqa: S603
    return sum(1 for _ in target.rglob("*.pyc"))


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    with pyproject.open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def pip_command(target: Path, requirements: list[str], python_version: str,
                platforms: tuple[str, ...] = PLATFORMS) -> list[str]:
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(target), "--implementation", "cp", "--python-version", python_version,
               "--only-binary=:all:", "--upgrade", "--no-compile"]
    for platform in platforms:
        command += ["--platform", platform]
    return command + requirements


def build(out: Path = DEFAULT_OUT, python_version: str = PYTHON_VERSION, *, bytecode: bool = True,
          python: str | None = None, platforms: tuple[str, ...] = PLATFORMS) -> Path:
    """Write the layer to ``out``; with ``bytecode``, compiled by an interpreter of ``python_version``
    (BuildError when none is found, before anything is written)."""
    interpreter = None
    if bytecode:
        interpreter = find_interpreter(python_version, python)
        if interpreter is None:
            raise BuildError(
                f"no Python {python_version} interpreter to compile the layer's bytecode with: install one "
                f"(python{python_version} on the PATH, pyenv or uv) or name it with --python or {INTERPRETER_ENV}; "
                "--no-bytecode builds a layer every cold start must compile from source (about 3x slower imports)")
    target = out / "python"
    if out.exists():
        shutil.rmtree(out)
    target.mkdir(parents=True)
    subprocess.run(pip_command(target, runtime_requirements(), python_version, platforms), check=True)  # noqa: S603 - our own pip command line
    shutil.copytree(SOURCE / "dramac_common", target / "dramac_common",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # Console scripts are of no use in a layer and name the build machine's interpreter.
    shutil.rmtree(target / "bin", ignore_errors=True)
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    compiled = compile_bytecode(target, interpreter) if interpreter else 0
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    what = f"{compiled} modules compiled by {interpreter}" if interpreter else "no bytecode"
    print(f"layer built in {out} ({size / 1_048_576:.1f} MB unzipped, {what}; Lambda allows 250 MB)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--python-version", default=PYTHON_VERSION)
    parser.add_argument("--python", help=f"the Python {PYTHON_VERSION} interpreter that compiles the bytecode")
    parser.add_argument("--no-bytecode", action="store_true", help="ship sources only (slower cold starts)")
    parser.add_argument("--platform", choices=("lambda", "host"), default="lambda",
                        help="wheels for Lambda (arm64, the default) or for this machine (benchmarks)")
    args = parser.parse_args(argv)
    try:
        build(args.out, args.python_version, bytecode=not args.no_bytecode, python=args.python,
              platforms=PLATFORMS if args.platform == "lambda" else host_platforms())
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
