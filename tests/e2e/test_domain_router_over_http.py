"""End to end over the local stack: non-/api requests go through the domain router by their Host."""

from dramac_dev.tokens import issue_token


def test_platform_subdomain_is_rewritten_to_its_site(local_stack):
    with local_stack.client() as http:
        reply = http.get("/about?x=1", headers={"host": "demo.sites.dramacagency.com"})
    assert reply.status_code == 200
    assert reply.json()["data"]["uri"] == "/site/demo.sites.dramacagency.com/about?x=1"


def test_custom_domain_is_rewritten_without_auth(local_stack):
    with local_stack.client() as http:
        reply = http.get("/", headers={"host": "www.client-example.com"})
    assert reply.json()["data"]["uri"] == "/site/www.client-example.com/"


def test_app_page_without_session_redirects_to_login(local_stack):
    with local_stack.client() as http:
        reply = http.get("/dashboard/sites?tab=modules", headers={"host": "localhost"})
    assert reply.status_code == 302
    assert reply.headers["location"] == "/login?redirectTo=%2Fdashboard%2Fsites%3Ftab%3Dmodules"


def test_app_page_with_a_dev_session_cookie_passes(local_stack, tenant):
    token = issue_token(tenant.owner)
    with local_stack.client() as http:
        reply = http.get("/dashboard", headers={"host": "localhost", "cookie": f"sb-access-token={token}"})
    assert reply.status_code == 200
    assert reply.json()["data"]["uri"] == "/dashboard"


def test_encoded_traversal_cannot_leave_the_site(local_stack):
    with local_stack.client() as http:
        reply = http.get("/%2e%2e/%2e%2e/admin", headers={"host": "demo.sites.dramacagency.com"})
    if reply.status_code == 200:
        assert reply.json()["data"]["uri"].startswith("/site/demo.sites.dramacagency.com/")
    else:
        assert reply.status_code in (400, 404)
