"""The router's settings and their production defaults (every key a `config.json` may set)."""

from typing import Any

DEFAULT_SETTINGS: dict[str, Any] = {
    "mode": "production",
    "app_domains": ["dramac.app", "app.dramac.app", "localhost"],
    "platform_site_domain": "sites.dramacagency.com",
    "reserved_site_labels": ["www", "app", "api", "admin"],
    "public_prefixes": [
        "/login",
        "/signup",
        "/forgot-password",
        "/reset-password",
        "/auth/callback",
        "/embed",
        "/site",
        "/blog",
        "/preview",
        "/api",
        # Static assets by their folders, never by how a path ends: `/dashboard;.js` is the dashboard.
        # Not all of `/_next`: `/_next/data/...` is a page's server-side props, as private as the page.
        "/_next/static",
        "/_next/image",
    ],
    "public_files": ["/favicon.ico", "/robots.txt", "/sitemap.xml", "/manifest.webmanifest"],
    "session_cookie": "sb-access-token",
    "login_path": "/login",
    "onboarding_path": "/onboarding",
    # First claim present decides; only an explicit `false` sends the user to onboarding.
    "onboarding_claims": ["app_metadata.onboarding_completed", "user_metadata.onboarding_completed"],
    "audience": "authenticated",
    "issuer": None,
    "clock_skew_seconds": 30,
    "jwks": {"keys": []},
    "hs256_secret": None,
}
