"""Domain router (Lambda@Edge): host rules, site rewrites, public paths, login redirects, sample events."""

import hmac
import importlib
import importlib.util
import json
from base64 import urlsafe_b64encode
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dramac_dev.functions_loader import load_function

REPO = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO / "events" / "domain_router"
NOW = 1_700_000_000
DEV_SECRET = "router-test-secret"


router = load_function("domain_router")  # functions/domain_router/app.py, as Lambda@Edge runs it
router_config = importlib.import_module("edge_router.config")
router_paths = importlib.import_module("edge_router.paths")


def make_config(**overrides):
    settings = {**router_config.DEFAULT_SETTINGS, "mode": "local", "hs256_secret": DEV_SECRET, **overrides}
    return router_config.parse_settings(settings)


CONFIG = make_config()


def _b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def session_token(**claims) -> str:
    payload = {
        "sub": "5f0c5a7e-0000-4000-8000-000000000001",
        "aud": "authenticated",
        "exp": NOW + 600,
        **claims,
    }
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(payload).encode())}"
    )
    signature = hmac.digest(DEV_SECRET.encode(), signing_input.encode(), "sha256")
    return f"{signing_input}.{_b64(signature)}"


def cf_request(host="app.dramac.app", uri="/", querystring="", cookie=None, extra_headers=None) -> dict:
    headers = {"host": [{"key": "Host", "value": host}]}
    if cookie is not None:
        headers["cookie"] = [{"key": "Cookie", "value": cookie}]
    headers.update(extra_headers or {})
    return {
        "clientIp": "203.0.113.178",
        "headers": headers,
        "method": "GET",
        "querystring": querystring,
        "uri": uri,
    }


def route(request: dict, config=CONFIG) -> dict:
    return router.route_request(request, config, NOW)


def status_of(result: dict) -> str | None:
    return result.get("status")


def location_of(result: dict) -> str:
    return result["headers"]["location"][0]["value"]


# --- hosts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "site_host"),
    [
        ("acme.sites.dramacagency.com", "acme.sites.dramacagency.com"),
        ("ACME.Sites.DramacAgency.COM", "acme.sites.dramacagency.com"),
        ("acme.sites.dramacagency.com:443", "acme.sites.dramacagency.com"),
        ("acme.sites.dramacagency.com.", "acme.sites.dramacagency.com"),
        ("Acme.Sites.Dramacagency.Com.:8443", "acme.sites.dramacagency.com"),
        ("www.acme-bakery.com", "www.acme-bakery.com"),
        ("shop.example.co.uk", "shop.example.co.uk"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("xn--ls8h.sites.dramacagency.com", "xn--ls8h.sites.dramacagency.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        ("sites.dramacagency.com.evil.com", "sites.dramacagency.com.evil.com"),
    ],
)
def test_site_hosts_are_normalised_and_rewritten_under_site(host, site_host):
    result = route(cf_request(host=host, uri="/about"))
    assert result["uri"] == f"/site/{site_host}/about"
    assert result["headers"]["x-dramac-site-host"] == [{"key": "X-Dramac-Site-Host", "value": site_host}]


def test_site_rewrite_keeps_query_string_and_needs_no_session():
    result = route(cf_request(host="acme.sites.dramacagency.com", uri="/menu", querystring="page=2&sort=asc"))
    assert result["uri"] == "/site/acme.sites.dramacagency.com/menu"
    assert result["querystring"] == "page=2&sort=asc"


def test_site_root_is_rewritten_with_trailing_slash():
    assert route(cf_request(host="example.com", uri="/"))["uri"] == "/site/example.com/"


def test_host_of_exactly_253_characters_is_accepted():
    host = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "com"])
    assert len(host) == 253
    assert route(cf_request(host=host))["uri"] == f"/site/{host}/"


def test_nested_platform_subdomain_is_not_found():
    assert status_of(route(cf_request(host="shop.acme.sites.dramacagency.com"))) == "404"


@pytest.mark.parametrize("label", ["www", "app", "api", "admin", "WWW", "Admin"])
def test_reserved_platform_labels_are_not_tenant_sites(label):
    assert status_of(route(cf_request(host=f"{label}.sites.dramacagency.com"))) == "404"


def test_bare_platform_site_domain_is_not_found():
    assert status_of(route(cf_request(host="sites.dramacagency.com"))) == "404"


def test_single_label_host_that_is_not_an_app_domain_is_not_found():
    assert status_of(route(cf_request(host="intranet"))) == "404"


@pytest.mark.parametrize(
    "host",
    [
        "",
        ".",
        "..",
        "a..b.com",
        ".example.com",
        "exa mple.com",
        "-bad.com",
        "bad-.com",
        "under_score.com",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4) + ".com",
        "example.com:99999",
        "example.com:abc",
        "example.com:",
        "[::1]",
        "[::1]:3000",
        "203.0.113.7",
        "203.0.113.7:80",
        "bücher.example",
        "xn--bcher-kva\u00e9.example",
        "xn--zz.example",
        "xn--.example",
        "example.com\r\nX-Injected: 1",
        "example.com\nSet-Cookie: a=b",
        "example.com\x00.evil",
        "example.com/evil",
        "user@example.com",
        "example.com\\evil",
        "a" * 10_000,
    ],
)
def test_invalid_hosts_are_bad_requests(host):
    result = route(cf_request(host=host))
    assert status_of(result) == "400"
    assert result["headers"]["cache-control"] == [{"key": "Cache-Control", "value": "no-store"}]


def test_missing_host_header_is_a_bad_request():
    request = cf_request()
    del request["headers"]["host"]
    assert status_of(route(request)) == "400"


@pytest.mark.parametrize(
    "host", ["dramac.app", "app.dramac.app", "localhost", "LOCALHOST:3000", "App.Dramac.App."]
)
def test_app_domains_are_not_rewritten(host):
    result = route(cf_request(host=host, uri="/login"))
    assert result["uri"] == "/login"
    assert "x-dramac-site-host" not in result["headers"]


# --- site paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "rewritten"),
    [
        ("//evil.com", "/site/example.com/evil.com"),
        ("//evil.com/path", "/site/example.com/evil.com/path"),
        ("/a//b///c", "/site/example.com/a/b/c"),
        ("/a/./b/.", "/site/example.com/a/b/"),
        ("/blog/", "/site/example.com/blog/"),
        ("/%7Euser/%41%62c", "/site/example.com/~user/Abc"),
        ("/caf%c3%a9", "/site/example.com/caf%C3%A9"),
        ("/100%25", "/site/example.com/100%25"),
        ("/%252e%252e/x", "/site/example.com/%252e%252e/x"),
        ("/.well-known/security.txt", "/site/example.com/.well-known/security.txt"),
        ("/...", "/site/example.com/..."),
        ("/a/b;c=d", "/site/example.com/a/b;c=d"),
    ],
)
def test_site_paths_are_normalised_inside_the_site_prefix(uri, rewritten):
    assert route(cf_request(host="example.com", uri=uri))["uri"] == rewritten


@pytest.mark.parametrize(
    "uri",
    [
        "/..",
        "/../etc/passwd",
        "/a/../../b",
        "/a/../b",
        "/%2e%2e/secret",
        "/%2E%2E/secret",
        "/.%2e/secret",
        "/%2e./secret",
        "/a/..;/b",
        "/a%2fb",
        "/a%2F..%2F..",
        "/a%5cb",
        "/a%5C..%5C..",
        "/a\\b",
        "/\\evil.com",
        "/a%00b",
        "/a%0d%0aSet-Cookie:%20x=y",
        "/a\r\nSet-Cookie: x=y",
        "/a b",
        "/bad%zz",
        "/trailing%",
        "/half%2",
        "/caf\u00e9",
        "relative/path",
        "",
        "/" + "a" * 9000,
    ],
)
def test_path_escape_attempts_are_bad_requests(uri):
    assert status_of(route(cf_request(host="acme.sites.dramacagency.com", uri=uri))) == "400"


def test_client_supplied_site_host_header_is_overwritten():
    forged = {"x-dramac-site-host": [{"key": "X-Dramac-Site-Host", "value": "victim.sites.dramacagency.com"}]}
    result = route(cf_request(host="acme.sites.dramacagency.com", extra_headers=forged))
    assert result["headers"]["x-dramac-site-host"] == [
        {"key": "X-Dramac-Site-Host", "value": "acme.sites.dramacagency.com"}
    ]


def test_client_supplied_router_headers_are_removed_on_app_requests():
    forged = {
        "x-dramac-site-host": [{"key": "X-Dramac-Site-Host", "value": "victim.example"}],
        "x-dramac-user": [{"key": "X-Dramac-User", "value": "someone-else"}],
    }
    result = route(cf_request(uri="/login", extra_headers=forged))
    assert not [name for name in result["headers"] if name.startswith("x-dramac-")]


def test_router_headers_are_removed_whatever_their_case():
    forged = {"X-Dramac-User": [{"key": "X-Dramac-User", "value": "someone-else"}],
              "accept": [{"key": "Accept", "value": "*/*"}]}
    result = route(cf_request(uri="/login", extra_headers=forged))
    assert sorted(result["headers"]) == ["accept", "host"]
    site = route(cf_request(host="acme.sites.dramacagency.com", extra_headers=forged))
    assert sorted(site["headers"]) == ["accept", "host", "x-dramac-site-host"]


def test_a_host_decides_the_same_on_every_request_and_the_remembered_hosts_stay_bounded():
    config = make_config()
    hosts_module = importlib.import_module("edge_router.hosts")
    cases = {"acme.sites.dramacagency.com": "/site/acme.sites.dramacagency.com/", "bad_host..example": "400",
             "admin.sites.dramacagency.com": "404", "app.dramac.app": "/login"}
    for _ in range(3):  # first decision computed, the next ones remembered: identical
        for host, expected in cases.items():
            result = route(cf_request(host=host, uri="/login" if host == "app.dramac.app" else "/"), config)
            assert result.get("status", result.get("uri")) == expected
    for number in range(hosts_module.HOST_ROUTE_CACHE_SIZE + 10):
        assert route(cf_request(host=f"site{number}.example.com"), config)["uri"] == f"/site/site{number}.example.com/"
    assert 0 < len(config.host_routes) <= hosts_module.HOST_ROUTE_CACHE_SIZE
    assert status_of(route(cf_request(host="bad_host..example"), config)) == "400"


def test_other_request_headers_are_forwarded_untouched():
    extra = {"user-agent": [{"key": "User-Agent", "value": "curl/8"}]}
    result = route(cf_request(host="example.com", extra_headers=extra))
    assert result["headers"]["user-agent"] == [{"key": "User-Agent", "value": "curl/8"}]
    assert result["method"] == "GET"
    assert result["clientIp"] == "203.0.113.178"


# --- app domain: public paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "/login",
        "/login/",
        "/signup",
        "/forgot-password",
        "/reset-password",
        "/reset-password/token-123",
        "/auth/callback",
        "/embed/widget/42",
        "/site/acme.sites.dramacagency.com/about",
        "/blog/acme/first-post",
        "/preview/page-1",
        "/api",
        "/api/health",
        "/_next/static/chunks/main.js",
        "/_next/static/css/app.css",
        "/_next/image",
        "/favicon.ico",
        "/robots.txt",
        "/sitemap.xml",
        "/manifest.webmanifest",
    ],
)
def test_public_app_paths_pass_through_unchanged(uri):
    result = route(cf_request(uri=uri, querystring="a=1"))
    assert result["uri"] == uri
    assert result["querystring"] == "a=1"


@pytest.mark.parametrize(
    "uri",
    [
        "/dashboard;.js",
        "/dashboard;.css",
        "/dashboard/settings/billing.css",
        "/dashboard/settings/billing.js",
        "/settings.js",
        "/dashboard/report.png",
        "/dashboard;x=1.woff2",
        "/dashboard/%2e.js",
        "/agency/clients.json",
        "/images/logo.png",
        "/styles/app.CSS",
        "/_next/data/build-id/dashboard.json",
        "/_next/webpack-hmr",
        "/_next",
        "/_next/static.js",
        "/_next/imagex",
        "/favicon.ico/../dashboard;.ico",
    ],
)
def test_a_private_path_never_becomes_public_by_how_it_ends(uri):
    result = route(cf_request(uri=uri))
    assert status_of(result) in ("302", "400"), result
    if status_of(result) == "302":
        assert location_of(result).startswith("/login?redirectTo=")


@pytest.mark.parametrize("uri", ["/images/logo.png", "/fonts/inter.woff2"])
def test_static_folders_are_public_only_when_configured_as_prefixes(uri):
    config = make_config(public_prefixes=[*router_config.DEFAULT_SETTINGS["public_prefixes"], "/images", "/fonts"])
    assert router.route_request(cf_request(uri=uri), config, NOW)["uri"] == uri
    assert status_of(route(cf_request(uri=uri))) == "302"


def test_the_suffix_rule_setting_is_refused_with_the_reason():
    with pytest.raises(router_config.ConfigError, match="never becomes public by how it ends"):
        make_config(static_extensions=[".js"])


def test_percent_encoded_public_path_is_recognised_and_forwarded_decoded():
    assert route(cf_request(uri="/%6Cogin"))["uri"] == "/login"


@pytest.mark.parametrize(
    "uri",
    [
        "/loginx",
        "/login-as-admin",
        "/apix",
        "/api-internal",
        "/sitex",
        "/site-admin",
        "/embedded",
        "/LOGIN",
        "/_nextx/secret",
        "/dashboard",
        "/",
        "/settings/billing",
        "/.png",
        "/report.pdf",
    ],
)
def test_paths_that_only_resemble_public_prefixes_need_a_session(uri):
    result = route(cf_request(uri=uri))
    assert status_of(result) == "302"
    assert location_of(result).startswith("/login?redirectTo=")


@pytest.mark.parametrize(
    "uri", ["/login/../dashboard", "/api/%2e%2e/dashboard", "/api/..%2fdashboard", "/login/..;/admin"]
)
def test_traversal_out_of_a_public_prefix_is_a_bad_request(uri):
    assert status_of(route(cf_request(uri=uri))) == "400"


# --- app domain: sessions and redirects ----------------------------------------------------------


def test_protected_path_without_cookie_redirects_to_login_with_original_target():
    result = route(cf_request(uri="/dashboard/sites", querystring="tab=modules&page=2"))
    assert result["status"] == "302"
    assert result["statusDescription"] == "Found"
    assert location_of(result) == "/login?redirectTo=%2Fdashboard%2Fsites%3Ftab%3Dmodules%26page%3D2"
    assert result["headers"]["cache-control"] == [{"key": "Cache-Control", "value": "no-store"}]


def test_protected_path_with_valid_session_is_forwarded():
    result = route(cf_request(uri="/dashboard", cookie=f"sb-access-token={session_token()}"))
    assert result["uri"] == "/dashboard"
    assert "status" not in result


@pytest.mark.parametrize(
    "cookie_header",
    [
        "theme=dark; sb-access-token={token}; other=1",
        'sb-access-token="{token}"',
        "  sb-access-token = {token} ",
    ],
)
def test_session_cookie_is_found_among_other_cookies(cookie_header):
    request = cf_request(uri="/dashboard", cookie=cookie_header.format(token=session_token()))
    assert route(request)["uri"] == "/dashboard"


def test_session_cookie_is_found_in_a_later_cookie_header_entry():
    request = cf_request(uri="/dashboard")
    request["headers"]["cookie"] = [
        {"key": "Cookie", "value": "theme=dark"},
        {"key": "Cookie", "value": f"sb-access-token={session_token()}"},
    ]
    assert route(request)["uri"] == "/dashboard"


@pytest.mark.parametrize(
    "cookie_header",
    [
        "",
        "sb-access-token=",
        "sb-access-token=not-a-jwt",
        "xsb-access-token={token}",
        "sb-access-tokenx={token}",
        "sb-access-token={token}x",
        "sb-access-token={token}\r\nX-Injected: 1",
    ],
)
def test_missing_or_invalid_session_cookie_redirects_to_login(cookie_header):
    request = cf_request(uri="/dashboard", cookie=cookie_header.format(token=session_token()))
    assert location_of(route(request)) == "/login?redirectTo=%2Fdashboard"


def test_expired_session_redirects_to_login():
    request = cf_request(uri="/dashboard", cookie=f"sb-access-token={session_token(exp=NOW - 3600)}")
    assert status_of(route(request)) == "302"


def test_huge_cookie_header_is_ignored_rather_than_parsed():
    request = cf_request(
        uri="/dashboard", cookie="a=" + "x" * 100_000 + f"; sb-access-token={session_token()}"
    )
    assert status_of(route(request)) == "302"


@pytest.mark.parametrize(
    "claims",
    [
        {"user_metadata": {"onboarding_completed": False}},
        {"app_metadata": {"onboarding_completed": False}},
        {"app_metadata": {"onboarding_completed": False}, "user_metadata": {"onboarding_completed": True}},
    ],
)
def test_user_who_has_not_finished_onboarding_is_sent_to_onboarding(claims):
    request = cf_request(uri="/dashboard", cookie=f"sb-access-token={session_token(**claims)}")
    result = route(request)
    assert status_of(result) == "302"
    assert location_of(result) == "/onboarding"


@pytest.mark.parametrize("uri", ["/onboarding", "/onboarding/", "/onboarding/agency"])
def test_user_who_has_not_finished_onboarding_may_use_the_onboarding_pages(uri):
    token = session_token(user_metadata={"onboarding_completed": False})
    assert route(cf_request(uri=uri, cookie=f"sb-access-token={token}"))["uri"] == uri


@pytest.mark.parametrize(
    "claims",
    [
        {},
        {"user_metadata": {"onboarding_completed": True}},
        {"app_metadata": {"onboarding_completed": True}, "user_metadata": {"onboarding_completed": False}},
        {"user_metadata": {"onboarding_completed": "false"}},
        {"user_metadata": "not-an-object"},
    ],
)
def test_user_without_an_explicit_unfinished_onboarding_claim_is_not_redirected(claims):
    request = cf_request(uri="/dashboard", cookie=f"sb-access-token={session_token(**claims)}")
    assert route(request)["uri"] == "/dashboard"


# --- open redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "querystring", "redirect_to"),
    [
        ("//evil.com", "", "/evil.com"),
        ("//evil.com/x", "y=1", "/evil.com/x?y=1"),
        ("/dashboard", "next=https://evil.com", "/dashboard?next=https://evil.com"),
        ("/dashboard", "a=1\r\nSet-Cookie: x=y", "/dashboard"),
        ("/dashboard", "a=\u00e9", "/dashboard"),
        ("/dashboard", "a=%0d%0a", "/dashboard"),
        ("/dashboard", "x" * 5000, "/dashboard"),
    ],
)
def test_login_redirect_target_is_always_a_same_site_relative_path(uri, querystring, redirect_to):
    location = location_of(route(cf_request(uri=uri, querystring=querystring)))
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("", "", "/login")
    assert parse_qs(parts.query)["redirectTo"] == [redirect_to]
    assert "\r" not in location and "\n" not in location


@pytest.mark.parametrize(
    "candidate",
    [
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "https://evil.com",
        "http:evil.com",
        "javascript:alert(1)",
        "evil.com",
        "/%2F%2Fevil.com",
        "/%2f/evil.com",
        "/%5Cevil.com",
        "/\tevil.com",
        "/\x00evil",
        "/a\r\nLocation: https://evil.com",
        "/%0d%0aSet-Cookie:x",
        "/caf\u00e9",
        "",
        None,
        "/" + "a" * 3000,
    ],
)
def test_unsafe_redirect_targets_are_replaced_by_the_site_root(candidate):
    assert router_paths.safe_redirect_path(candidate) == "/"


@pytest.mark.parametrize("candidate", ["/", "/dashboard", "/dashboard?tab=1&next=https://x.test", "/a/b%20c"])
def test_same_site_relative_paths_are_kept_as_redirect_targets(candidate):
    assert router_paths.safe_redirect_path(candidate) == candidate


# --- sample events -------------------------------------------------------------------------------


SAMPLE_EVENT_OUTCOMES = {
    "platform_subdomain_site.json": {"uri": "/site/acme.sites.dramacagency.com/about/team"},
    "custom_domain_site.json": {"uri": "/site/www.acme-bakery.com/menu"},
    "nested_subdomain_404.json": {"status": "404"},
    "reserved_label_404.json": {"status": "404"},
    "invalid_host_400.json": {"status": "400"},
    "app_public_path.json": {"uri": "/login"},
    "app_protected_path_no_cookie_302.json": {"status": "302"},
    "path_traversal_400.json": {"status": "400"},
}


def test_every_sample_event_has_a_documented_outcome():
    assert sorted(path.name for path in EVENTS_DIR.glob("*.json")) == sorted(SAMPLE_EVENT_OUTCOMES)


@pytest.mark.parametrize(("file_name", "expected"), sorted(SAMPLE_EVENT_OUTCOMES.items()))
def test_sample_events_route_as_documented(file_name, expected, monkeypatch):
    event = json.loads((EVENTS_DIR / file_name).read_text())
    monkeypatch.setattr(router, "_config", CONFIG)
    result = router.handler(event, None)
    assert {key: result.get(key) for key in expected} == expected


def test_protected_sample_event_redirects_to_login_with_its_path_and_query(monkeypatch):
    event = json.loads((EVENTS_DIR / "app_protected_path_no_cookie_302.json").read_text())
    monkeypatch.setattr(router, "_config", CONFIG)
    assert (
        location_of(router.handler(event, None)) == "/login?redirectTo=%2Fdashboard%2Fsites%3Ftab%3Dmodules"
    )
