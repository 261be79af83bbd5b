"""Builds the domain router's Lambda@Edge bundle: its own modules plus `config.json`.

Lambda@Edge has no environment variables, so the settings travel inside the
bundle. A production bundle carries public keys only: it refuses any HS256
secret or private key material, and needs at least one JWK unless the caller
explicitly allows a keyless bundle (tests). Usage:

    python functions/domain_router/bundle.py --mode production --out build/domain_router \\
        --jwks jwks.json --issuer https://<ref>.supabase.co/auth/v1 [--config overrides.json] [--zip]
"""

import argparse
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

from edge_router.config import CONFIG_FILE_NAME, ConfigError, parse_settings
from edge_router.defaults import DEFAULT_SETTINGS

SOURCE_DIR = Path(__file__).resolve().parent
PACKAGE = "edge_router"

# Lambda@Edge quota for viewer-request (and viewer-response) functions, zipped.
VIEWER_REQUEST_MAX_ZIPPED_BYTES = 1024 * 1024
_FIXED_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # reproducible archives: same inputs, same bytes
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class BundleError(ValueError):
    """The bundle cannot be built as asked (a secret in production, no keys, a bad setting)."""


# Source-tree only: the local dev settings (and their default secret) never ship.
_NEVER_BUNDLED = frozenset({"local.py"})


def router_source_files() -> list[Path]:
    """The router's own modules: app.py and the edge_router package (not this build script, not
    the local settings)."""
    modules = sorted(
        path for path in (SOURCE_DIR / PACKAGE).glob("*.py") if path.name not in _NEVER_BUNDLED
    )
    return [SOURCE_DIR / "app.py", *modules]


def build_bundle(
    out_dir: str | os.PathLike,
    *,
    mode: str = "production",
    config_overrides: dict | None = None,
    allow_no_keys: bool = False,
) -> Path:
    """Write the bundle directory and return its path.

    `out_dir` must be missing or empty, or hold a previous bundle (it is then replaced).
    """
    settings = _bundle_settings(mode, config_overrides or {}, allow_no_keys)
    out = Path(out_dir)
    _prepare_out_dir(out)
    (out / PACKAGE).mkdir()
    for source in router_source_files():
        shutil.copy2(source, out / source.relative_to(SOURCE_DIR))
    (out / CONFIG_FILE_NAME).write_text(
        json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return out


def zip_bundle(bundle_dir: str | os.PathLike) -> Path:
    """Zip a bundle directory into `<dir>.zip` beside it; BundleError above the viewer-request limit."""
    bundle = Path(bundle_dir)
    archive = bundle.with_name(bundle.name + ".zip")
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zipped:
        for path in sorted(p for p in bundle.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            info = zipfile.ZipInfo(path.relative_to(bundle).as_posix(), date_time=_FIXED_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(info, path.read_bytes())
    size = archive.stat().st_size
    if size > VIEWER_REQUEST_MAX_ZIPPED_BYTES:
        raise BundleError(f"{archive} is {size} bytes; viewer-request functions are limited to 1 MB zipped")
    return archive


def _bundle_settings(mode: str, overrides: dict, allow_no_keys: bool) -> dict:
    if mode == "local":
        from edge_router.local import local_settings  # the source tree's dev settings

        settings = {**local_settings(os.environ), **overrides, "mode": "local"}
    elif mode == "production":
        settings = {**DEFAULT_SETTINGS, **overrides, "mode": "production"}
        _refuse_secrets(settings)
        if not settings["jwks"].get("keys") and not allow_no_keys:
            raise BundleError(
                "a production bundle needs at least one public JWK (e.g. the issuer's /.well-known/jwks.json): "
                "without one no session would ever be valid"
            )
    else:
        raise BundleError(f"mode must be 'production' or 'local', not {mode!r}")
    try:
        parse_settings(settings)  # the same validation the router does at load time
    except ConfigError as error:
        raise BundleError(f"invalid router configuration: {error}") from None
    return settings


def _refuse_secrets(settings: dict) -> None:
    if settings.get("hs256_secret"):
        raise BundleError("a production bundle must not contain an HS256 secret; give public JWKs instead")
    jwks = settings.get("jwks")
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise BundleError('jwks must be a JWK set: {"keys": [...]}')
    for jwk in keys:
        if isinstance(jwk, dict) and (jwk.get("kty") == "oct" or any(m in jwk for m in _PRIVATE_JWK_MEMBERS)):
            raise BundleError(
                f"JWK {jwk.get('kid')!r} holds secret or private key material; only public keys may ship"
            )


def _prepare_out_dir(out: Path) -> None:
    if out.exists():
        entries = list(out.iterdir())
        if entries and not (out / CONFIG_FILE_NAME).is_file():
            raise BundleError(
                f"{out} is not empty and does not look like a previous bundle; refusing to overwrite"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _read_json(path: str | None) -> dict:
    if path is None:
        return {}
    value = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise BundleError(f"{path} must hold a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the domain router's Lambda@Edge bundle.")
    parser.add_argument("--mode", choices=("production", "local"), default="production")
    parser.add_argument("--out", required=True, help="bundle directory to create")
    parser.add_argument("--config", help="JSON file of settings overriding the defaults")
    parser.add_argument("--jwks", help="JWK set (JSON) with the issuer's public signing keys")
    parser.add_argument("--issuer", help="required `iss` claim, e.g. https://<ref>.supabase.co/auth/v1")
    parser.add_argument("--audience", help="required `aud` claim (default: authenticated)")
    parser.add_argument("--zip", action="store_true", help="also write <out>.zip and check its size")
    args = parser.parse_args(argv)
    try:
        overrides = _read_json(args.config)
        if args.jwks:
            overrides["jwks"] = _read_json(args.jwks)
        if args.issuer:
            overrides["issuer"] = args.issuer
        if args.audience:
            overrides["audience"] = args.audience
        out = build_bundle(args.out, mode=args.mode, config_overrides=overrides)
        if args.mode == "production" and not overrides.get("issuer"):
            print(
                "bundle: warning: no --issuer; tokens from any issuer holding these keys are accepted",
                file=sys.stderr,
            )
        print(out)
        if args.zip:
            print(zip_bundle(out))
    except (BundleError, OSError, ValueError) as error:
        print(f"bundle: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
