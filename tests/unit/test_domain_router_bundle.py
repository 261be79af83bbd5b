"""Domain router bundle: what ships to Lambda@Edge, its size, and that production bundles hold no secret."""

import ast
import hmac
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import zipfile
from base64 import urlsafe_b64encode
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from dramac_common.core.settings import DEV_JWT_SECRET

ROUTER_DIR = Path(__file__).resolve().parents[2] / "functions" / "domain_router"
spec = importlib.util.spec_from_file_location("dramac_fn_domain_router_bundle", ROUTER_DIR / "bundle.py")
bundle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bundle)
DEV_SECRETS = {DEV_JWT_SECRET}

EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def _public_jwk(kid="ec-1") -> dict:
    numbers = EC_KEY.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "alg": "ES256",
        "kid": kid,
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def _hs256_token(claims: dict, secret: bytes) -> str:
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    return f"{signing_input}.{_b64(hmac.digest(secret, signing_input.encode(), 'sha256'))}"


PRODUCTION_OVERRIDES = {"jwks": {"keys": [_public_jwk()]}, "issuer": "https://project.supabase.co/auth/v1"}


def _run_handler_in_bundle(bundle_dir: Path, host: str, uri: str, cookie: str = "") -> dict:
    """Run the bundled handler in a fresh interpreter without site-packages (stdlib only)."""
    headers = {"host": [{"key": "Host", "value": host}]}
    if cookie:
        headers["cookie"] = [{"key": "Cookie", "value": cookie}]
    event = {
        "Records": [
            {
                "cf": {
                    "config": {"eventType": "viewer-request"},
                    "request": {
                        "clientIp": "203.0.113.1",
                        "headers": headers,
                        "method": "GET",
                        "querystring": "",
                        "uri": uri,
                    },
                }
            }
        ]
    }
    script = (
        "import json, sys; import app; print(json.dumps(app.handler(json.loads(sys.argv[1]), None)))"
    )
    # as at the edge: the bundle is the code root (the working directory, first on the path), no site
    # packages (-S), no user site (-s), no PYTHON* variables (-E)
    completed = subprocess.run(
        [sys.executable, "-E", "-s", "-S", "-c", script, json.dumps(event)],
        cwd=bundle_dir,
        capture_output=True,
        text=True,
        check=True,
        env={"DRAMAC_ROUTER_LOCAL": "1"},
    )
    return json.loads(completed.stdout)


def test_production_bundle_contains_only_the_router_modules_and_its_config(tmp_path):
    out = bundle.build_bundle(tmp_path / "router", config_overrides=PRODUCTION_OVERRIDES)
    names = sorted(path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file())
    assert "app.py" in names and "config.json" in names and "edge_router/routing.py" in names
    assert "bundle.py" not in names and "edge_router/local.py" not in names
    assert all(name in ("config.json", "app.py") or name.startswith("edge_router/") for name in names)


def test_production_bundle_zips_well_under_the_viewer_request_limit(tmp_path):
    archive = bundle.zip_bundle(
        bundle.build_bundle(tmp_path / "router", config_overrides=PRODUCTION_OVERRIDES)
    )
    assert archive.stat().st_size < bundle.VIEWER_REQUEST_MAX_ZIPPED_BYTES
    assert "app.py" in zipfile.ZipFile(archive).namelist()


def test_production_bundle_contains_no_secret(tmp_path):
    out = bundle.build_bundle(tmp_path / "router", config_overrides=PRODUCTION_OVERRIDES)
    config = json.loads((out / "config.json").read_text())
    assert config["mode"] == "production"
    assert config["hs256_secret"] is None
    assert all("d" not in jwk and jwk["kty"] != "oct" for jwk in config["jwks"]["keys"])
    everything = b"".join(path.read_bytes() for path in out.rglob("*") if path.is_file())
    assert not [secret for secret in DEV_SECRETS if secret.encode() in everything]


@pytest.mark.parametrize(
    "overrides",
    [
        {**PRODUCTION_OVERRIDES, "hs256_secret": "some-secret"},
        {"jwks": {"keys": [{"kty": "oct", "kid": "s", "k": _b64(b"shared-secret")}]}},
        {"jwks": {"keys": [{**_public_jwk(), "d": _b64(b"\x01" * 32)}]}},
    ],
    ids=["hs256-secret", "symmetric-jwk", "private-jwk"],
)
def test_production_bundle_refuses_secret_key_material(tmp_path, overrides):
    with pytest.raises(bundle.BundleError, match=r"secret|private"):
        bundle.build_bundle(tmp_path / "router", config_overrides=overrides)
    assert not (tmp_path / "router").exists()


def test_production_bundle_requires_a_public_key(tmp_path):
    with pytest.raises(bundle.BundleError, match="at least one public JWK"):
        bundle.build_bundle(tmp_path / "router")


def test_keyless_production_bundle_is_possible_only_when_explicitly_allowed(tmp_path):
    out = bundle.build_bundle(tmp_path / "router", allow_no_keys=True)
    assert json.loads((out / "config.json").read_text())["jwks"] == {"keys": []}


def test_invalid_settings_are_refused_at_build_time(tmp_path):
    with pytest.raises(bundle.BundleError, match="invalid router configuration"):
        bundle.build_bundle(
            tmp_path / "router", config_overrides={**PRODUCTION_OVERRIDES, "app_domains": ["bad host"]}
        )


def test_local_bundle_carries_the_dev_secret_and_local_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("DRAMAC_JWT_SECRET", raising=False)
    config = json.loads((bundle.build_bundle(tmp_path / "router", mode="local") / "config.json").read_text())
    expected = ("local", DEV_JWT_SECRET, "dramac-local")
    assert (config["mode"], config["hs256_secret"], config["issuer"]) == expected


def test_bundle_refuses_to_overwrite_a_directory_that_is_not_a_bundle(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(bundle.BundleError, match="refusing"):
        bundle.build_bundle(tmp_path, config_overrides=PRODUCTION_OVERRIDES)
    assert (tmp_path / "precious.txt").exists()


def test_rebuilding_replaces_a_previous_bundle(tmp_path):
    bundle.build_bundle(tmp_path / "router", mode="local")
    out = bundle.build_bundle(tmp_path / "router", config_overrides=PRODUCTION_OVERRIDES)
    assert json.loads((out / "config.json").read_text())["mode"] == "production"


def test_oversized_bundle_is_refused_when_zipped(tmp_path):
    out = bundle.build_bundle(tmp_path / "router", config_overrides=PRODUCTION_OVERRIDES)
    (out / "padding.bin").write_bytes(bytes(range(256)) * 8192 + os.urandom(1024 * 1024))
    with pytest.raises(bundle.BundleError, match="1 MB"):
        bundle.zip_bundle(out)


def test_router_modules_import_only_the_standard_library():
    for source in bundle.router_source_files():
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) else [])
            )
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top == "edge_router" or node.level, (source.name, name)


def test_bundled_router_runs_without_site_packages_and_accepts_only_public_key_tokens(tmp_path):
    out = bundle.build_bundle(tmp_path / "router", config_overrides=PRODUCTION_OVERRIDES)
    now = int(time.time())
    claims = {"sub": "u-1", "aud": "authenticated", "iss": PRODUCTION_OVERRIDES["issuer"], "exp": now + 600}
    es256_token = jwt.encode(claims, EC_KEY, algorithm="ES256", headers={"kid": "ec-1"})
    dev_token = _hs256_token({**claims, "iss": "dramac-local"}, DEV_JWT_SECRET.encode())

    assert (
        _run_handler_in_bundle(out, "dramac.app", "/dashboard", f"sb-access-token={es256_token}")["uri"]
        == "/dashboard"
    )
    assert (
        _run_handler_in_bundle(out, "dramac.app", "/dashboard", f"sb-access-token={dev_token}")["status"]
        == "302"
    )
    assert (
        _run_handler_in_bundle(out, "acme.sites.dramacagency.com", "/")["uri"]
        == "/site/acme.sites.dramacagency.com/"
    )


def test_cli_builds_and_zips_a_production_bundle(tmp_path, capsys):
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(PRODUCTION_OVERRIDES["jwks"]))
    exit_code = bundle.main(
        [
            "--mode",
            "production",
            "--out",
            str(tmp_path / "router"),
            "--jwks",
            str(jwks_file),
            "--issuer",
            PRODUCTION_OVERRIDES["issuer"],
            "--zip",
        ]
    )
    assert exit_code == 0
    assert (tmp_path / "router.zip").is_file()
    assert str(tmp_path / "router.zip") in capsys.readouterr().out


def test_cli_reports_a_production_bundle_without_keys_as_an_error(tmp_path, capsys):
    assert bundle.main(["--mode", "production", "--out", str(tmp_path / "router")]) == 1
    assert "public JWK" in capsys.readouterr().err
