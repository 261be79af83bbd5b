"""A deploy rehearsal without an AWS account, on the synthesized cloud assembly:

- ``sam build`` (the AWS SAM CLI, in its own venv: tools/sam.txt) builds every function from the
  backend template's asset metadata, as it would before ``sam deploy``;
- every function's code, unpacked with the layer into a clean directory laid out as Lambda lays it
  out (``/var/task`` and ``/opt/python``), imports its handler in a Python with nothing else on its
  path (``-I -S``: no site-packages): a layer that misses a package fails here. The layer's
  third-party packages come from the project's runtime dependencies installed for this machine
  (the import runs here, not on arm64);
- the layer as ``make layer`` builds it for Lambda holds only wheels for its platform: every compiled
  wheel is ``manylinux…aarch64`` for CPython 3.13 (a wheel for the wrong platform fails here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.tools import tool

ROOT = Path(__file__).resolve().parents[2]


def asset_path(synth: Any, resource: dict[str, Any]) -> Path:
    path = resource.get("Metadata", {}).get("aws:asset:path")
    assert path, "no aws:asset:path metadata: synthesize with aws:cdk:enable-asset-metadata (the CLI's default)"
    return synth.outdir / path


def our_functions(synth: Any) -> dict[str, dict[str, Any]]:
    """Logical id → resource, for every function of functions/ the backend deploys (migration included)."""
    resources = synth.backend_template["Resources"]
    constructs = [*synth.backend.functions.values(), *([synth.backend.migration] if synth.backend.migration else [])]
    functions = {synth.logical_id(c): resources[synth.logical_id(c)] for c in constructs}
    assert functions, "no function synthesized: the checks would pass vacuously"
    return functions


@pytest.fixture(scope="module")
def sam_build(synth, tmp_path_factory) -> Path:
    build_dir = tmp_path_factory.mktemp("sam-build")
    template = synth.outdir / f"{synth.backend.stack_name}.template.json"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run([tool("sam", venv="sam"), "build", "--template-file", str(template),
                             "--build-dir", str(build_dir)],
                            cwd=synth.outdir, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, f"sam build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return build_dir


def test_sam_builds_every_function(synth, sam_build):
    assert (sam_build / "template.yaml").is_file()
    for logical_id in our_functions(synth):
        assert (sam_build / logical_id / "app.py").is_file(), f"sam build produced no code for {logical_id}"


@pytest.fixture(scope="module")
def host_packages(tmp_path_factory) -> Path:
    """The layer's third-party packages ([project] dependencies, exactly what layers/common/build.py
    installs), for this machine's Python, wheels only."""
    sys.path.insert(0, str(ROOT / "layers" / "common"))
    try:
        from build import runtime_requirements
    finally:
        sys.path.pop(0)
    target = tmp_path_factory.mktemp("host-layer")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--target", str(target), "--only-binary=:all:", "--no-compile", *runtime_requirements()],
                   check=True, timeout=900)
    return target


def test_every_handler_imports_in_a_clean_lambda_layout(synth, sam_build, host_packages, tmp_path):
    resources = synth.backend_template["Resources"]
    (layer_id,) = [k for k, v in resources.items() if v["Type"] == "AWS::Lambda::LayerVersion"]
    layer = asset_path(synth, resources[layer_id])
    bare_python = getattr(sys, "_base_executable", sys.executable)
    for logical_id, resource in our_functions(synth).items():
        root = tmp_path / logical_id
        task, opt = root / "var" / "task", root / "opt" / "python"
        shutil.copytree(sam_build / logical_id, task)
        shutil.copytree(layer / "python", opt)
        shutil.copytree(host_packages, opt, dirs_exist_ok=True)
        module, _, attribute = resource["Properties"]["Handler"].rpartition(".")
        env = {"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_LAMBDA_FUNCTION_NAME": logical_id, "POWERTOOLS_TRACE_DISABLED": "1"}
        for key, value in resource["Properties"].get("Environment", {}).get("Variables", {}).items():
            env[key] = value if isinstance(value, str) else f"placeholder-{key}"  # deploy-time references
        code = (f"import importlib, sys\nsys.path[:0] = [{str(task)!r}, {str(opt)!r}]\n"
                f"handler = getattr(importlib.import_module({module!r}), {attribute!r})\n"
                "assert callable(handler)\n"
                "outside = [p for p in sys.path if 'site-packages' in p]\n"
                "assert not outside, outside\n")
        result = subprocess.run([bare_python, "-I", "-S", "-c", code], cwd=root, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (
            f"{logical_id}: {resource['Properties']['Handler']} does not import from its code and the layer "
            f"alone (a runtime dependency missing from [project] dependencies?):\n{result.stderr[-3000:]}")


def test_the_lambda_layer_holds_only_arm64_cpython_3_13_wheels(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "layers" / "common" / "build.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"make layer failed:\n{result.stderr[-3000:]}"
    packages = tmp_path / "python"
    compiled = 0
    for wheel in packages.glob("*.dist-info/WHEEL"):
        fields = [line.split(":", 1) for line in wheel.read_text().splitlines() if ":" in line]
        if {k.strip(): v.strip() for k, v in fields}.get("Root-Is-Purelib") != "false":
            continue
        compiled += 1
        tags = [v.strip() for k, v in fields if k.strip() == "Tag"]
        for tag in tags:
            interpreter, abi, platform = tag.split("-")
            assert "manylinux" in platform and platform.endswith("aarch64"), f"{wheel.parent.name}: {tag}"
            assert interpreter == "cp313" or abi == "abi3", f"{wheel.parent.name}: {tag} is not for CPython 3.13"
    assert compiled >= 2, "no compiled wheel found (psycopg-binary, pydantic-core): the check would be vacuous"
    for shared in packages.rglob("*.so"):
        assert "x86_64" not in shared.name, f"{shared}: built for x86_64"
