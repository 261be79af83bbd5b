"""Domain router properties: no input makes it raise, and every output is a safe request or a well-formed response."""

import hmac
import importlib
import importlib.util
import json
import re
from base64 import urlsafe_b64encode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dramac_dev.functions_loader import load_function

NOW = 1_700_000_000
SECRET = "property-test-secret"


router = load_function("domain_router")  # functions/domain_router/app.py, as Lambda@Edge runs it
router_config = importlib.import_module("edge_router.config")
router_paths = importlib.import_module("edge_router.paths")
router_cloudfront = importlib.import_module("edge_router.cloudfront")
CONFIG = router_config.parse_settings(
    {**router_config.DEFAULT_SETTINGS, "mode": "local", "hs256_secret": SECRET}
)


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(payload: dict) -> str:
    header = _b64(json.dumps({"alg": "HS256"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(hmac.digest(SECRET.encode(), signing_input.encode(), 'sha256'))}"


VALID_TOKEN = _token({"sub": "u-1", "aud": "authenticated", "exp": NOW + 600})

hosts = st.one_of(
    st.text(max_size=300),
    st.from_regex(r"[A-Za-z0-9.\-:_]{0,80}", fullmatch=True),
    st.sampled_from(
        [
            "dramac.app",
            "app.dramac.app",
            "localhost:3000",
            "acme.sites.dramacagency.com",
            "a.b.sites.dramacagency.com",
            "www.sites.dramacagency.com",
            "example.com.",
        ]
    ),
    st.builds(lambda label: f"{label}.sites.dramacagency.com", st.text(max_size=70)),
)
uris = st.one_of(
    st.text(max_size=300),
    st.builds(lambda tail: "/" + tail, st.text(max_size=200)),
    st.builds(
        lambda parts: "/" + "/".join(parts),
        st.lists(
            st.sampled_from(
                [
                    "..",
                    ".",
                    "",
                    "%2e%2e",
                    "%2E.",
                    "%2f",
                    "%5c",
                    "\\",
                    "login",
                    "api",
                    "a",
                    "%41",
                    "%zz",
                    "%",
                    "..;",
                    "site",
                    "%00",
                    "~",
                ]
            ),
            max_size=8,
        ),
    ),
)
querystrings = st.one_of(st.text(max_size=200), st.from_regex(r"[A-Za-z0-9=&%._~+\-]{0,60}", fullmatch=True))
cookies = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.builds(lambda junk: f"sb-access-token={VALID_TOKEN}{junk}", st.text(max_size=20)),
    st.builds(lambda value: f"sb-access-token={value}", st.text(max_size=300)),
)

_STATUS_DESCRIPTIONS = {"302": "Found", "400": "Bad Request", "404": "Not Found"}
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


def _assert_well_formed_response(result: dict) -> None:
    assert _STATUS_DESCRIPTIONS[result["status"]] == result["statusDescription"]
    assert result["headers"]["cache-control"] == [{"key": "Cache-Control", "value": "no-store"}]
    for name, entries in result["headers"].items():
        assert name == name.lower()
        for entry in entries:
            assert entry["key"].lower() == name
            assert _HEADER_VALUE.fullmatch(entry["value"])
    if result["status"] == "302":
        location = result["headers"]["location"][0]["value"]
        assert router_paths.is_same_site_path(location)


def _assert_safe_request(result: dict) -> None:
    uri = result["uri"]
    assert uri.startswith("/") and not uri.startswith("//")
    segments = uri.split("/")[1:]
    assert ".." not in segments and "" not in segments[:-1]
    assert "\\" not in uri and not re.search(r"%(2[fF]|5[cC]|0[0-9a-fA-F]|1[0-9a-fA-F]|7[fF])", uri)
    site_header = result["headers"].get("x-dramac-site-host")
    if site_header is not None:
        site_host = site_header[0]["value"]
        assert uri.startswith(f"/site/{site_host}/")
    else:
        assert not uri.startswith("/site/") or router_paths.is_public_path(uri, CONFIG)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host=hosts, uri=uris, querystring=querystrings, cookie=cookies)
def test_no_input_makes_the_router_raise_and_every_output_is_well_formed(host, uri, querystring, cookie):
    headers = {"host": [{"key": "Host", "value": host}]}
    if cookie is not None:
        headers["cookie"] = [{"key": "Cookie", "value": cookie}]
    request = {
        "clientIp": "203.0.113.9",
        "headers": headers,
        "method": "GET",
        "querystring": querystring,
        "uri": uri,
    }
    result = router.route_request(request, CONFIG, NOW)
    if "status" in result:
        _assert_well_formed_response(result)
    else:
        _assert_safe_request(result)


@settings(max_examples=300, deadline=None)
@given(uri=uris)
def test_normalised_paths_never_leave_the_prefix_they_are_appended_to(uri):
    try:
        path = router_paths.normalise_path(uri)
    except router_cloudfront.RouteRejected:
        return
    assert path.startswith("/")
    assert ".." not in path.split("/")
    assert router_paths.normalise_path(path) == path


@settings(max_examples=300, deadline=None)
@given(candidate=st.text(max_size=100))
def test_safe_redirect_path_only_ever_returns_same_site_relative_paths(candidate):
    target = router_paths.safe_redirect_path(candidate)
    assert target.startswith("/") and not target.startswith("//") and not target.startswith("/\\")


private_segments = st.lists(
    st.one_of(st.sampled_from(["dashboard", "settings", "billing", "agency", "clients", "_next", "data", "x"]),
              st.from_regex(r"[a-z0-9\-]{1,12}", fullmatch=True)),
    min_size=1, max_size=5,
).filter(lambda parts: not router_paths.is_public_path("/" + "/".join(parts), CONFIG))
asset_endings = st.sampled_from([
    ".js", ".css", ".png", ".ico", ".woff2", ".map", ".svg", ".JS", ";.js", ";.css", ";x=1.png", "/x.css",
    "/app.js", "/favicon.ico", "/robots.txt", "/sitemap.xml", "%3B.js", ";/x.js", "/.css",
])


@settings(max_examples=300, deadline=None)
@given(parts=private_segments, ending=asset_endings, querystring=querystrings)
def test_a_private_path_never_becomes_public_by_its_last_characters(parts, ending, querystring):
    """Whatever a private path ends with (an asset suffix, `;.js`, a file name of a public file), it
    still needs a session: static assets are recognised by their prefixes only."""
    request = {"clientIp": "203.0.113.9", "headers": {"host": [{"key": "Host", "value": "app.dramac.app"}]},
               "method": "GET", "querystring": querystring, "uri": "/" + "/".join(parts) + ending}
    result = router.route_request(request, CONFIG, NOW)
    assert result.get("status") in ("302", "400"), result
