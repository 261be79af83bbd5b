"""The error mapping's last line of defence for concurrent requests: a statement PostgreSQL rolls
back because a twin request changed the same data (class 40: serialization failure, deadlock; 55P03:
a lock it waited for too long) answers 409 ``conflict_retry``; a unique key already taken answers 409
``unique_violation``: never a 5xx, and never the database's message. The errors are raised by a real PostgreSQL, through the same unit of work the
handlers use."""

import pytest
from dramac_common.core import db
from dramac_common.core.api import create_app
from fastapi.testclient import TestClient


@pytest.fixture
def client(database_url):
    app = create_app("conflicts")

    @app.post("/raise/{sqlstate}")
    def raise_from_the_database(sqlstate: str):
        with db.service_unit() as unit:
            unit.execute(f"DO $$ BEGIN RAISE EXCEPTION 'internal detail 42' USING ERRCODE = '{sqlstate}'; END $$")

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("sqlstate", "code"), [("40001", "conflict_retry"), ("40P01", "conflict_retry"),
                                               ("40000", "conflict_retry"), ("55P03", "conflict_retry"),
                                               ("23505", "unique_violation")])
def test_a_concurrent_change_is_409(client, sqlstate, code):
    reply = client.post(f"/raise/{sqlstate}")
    assert reply.status_code == 409
    assert reply.json()["code"] == code
    assert "internal detail" not in reply.text


def test_a_real_deadlock_between_two_requests_is_409_for_the_victim(client, database_url, owner_conn):
    import threading

    owner_conn.execute("CREATE TABLE IF NOT EXISTS public.deadlock_probe (id int PRIMARY KEY, n int)")
    owner_conn.execute("INSERT INTO public.deadlock_probe VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING")
    app = create_app("deadlock")
    barrier = threading.Barrier(2)

    @app.post("/lock/{first}/{second}")
    def lock_in_order(first: int, second: int):
        with db.service_unit() as unit:
            unit.execute("UPDATE public.deadlock_probe SET n = n + 1 WHERE id = %s", (first,))
            barrier.wait()
            unit.execute("UPDATE public.deadlock_probe SET n = n + 1 WHERE id = %s", (second,))
        return {"ok": True}

    http = TestClient(app, raise_server_exceptions=False)
    replies = []
    threads = [threading.Thread(target=lambda a=a, b=b: replies.append(http.post(f"/lock/{a}/{b}").status_code))
               for a, b in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    owner_conn.execute("DROP TABLE public.deadlock_probe")
    assert sorted(replies) == [200, 409]
