"""Webhook management: CRUD, validation, ownership, tiers, the test endpoint, the CLI."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from gateway.cli import main
from gateway.webhooks.signing import verify

from .conftest import Running
from .helpers import push, quote
from .test_webhooks_delivery import Receiver, create_hook, deliveries, fast_retries, receiver

__all__ = ["fast_retries", "receiver"]  # fixtures shared with the delivery tests


def hdr(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def test_crud_rotate_and_the_secret_shown_once(gateway: Running) -> None:
    key = gateway.key("business")
    with trio.fail_after(5):
        async with gateway.client() as c:
            hook = await create_hook(c, key, "https://example.com/hooks/odds", description="bot",
                                     filters={"sports": ["basketball_nba", "icehockey_nhl"], "threshold": 20},
                                     kinds="props", direction="toward_underdog")
            got = (await c.get(f"/v1/webhooks/{hook['id']}", headers=hdr(key))).json()
            listed = (await c.get("/v1/webhooks", headers=hdr(key))).json()
            patched = await c.patch(f"/v1/webhooks/{hook['id']}", headers=hdr(key),
                                    json={"threshold": 30, "format": "slack", "bookmakers": "pinnacle,fanduel"})
            bad_patch = await c.patch(f"/v1/webhooks/{hook['id']}", headers=hdr(key),
                                      json={"url": "javascript:alert(1)", "threshold": 5})
            cleared = (await c.patch(f"/v1/webhooks/{hook['id']}", headers=hdr(key),
                                     json={"bookmakers": None, "sports": "all", "is_active": False})).json()
            rotated = (await c.post(f"/v1/webhooks/{hook['id']}/rotate-secret", headers=hdr(key))).json()
            deleted = await c.delete(f"/v1/webhooks/{hook['id']}", headers=hdr(key))
            gone = await c.get(f"/v1/webhooks/{hook['id']}", headers=hdr(key))
    assert hook["secret"].startswith("whsec_") and len(hook["secret"]) == 49
    assert hook["filters"] == {"sports": ["basketball_nba", "icehockey_nhl"], "threshold": 20,
                               "direction": "toward_dog", "kinds": ["prop"], "bookmakers": None,
                               "markets": None, "event_id": None}
    assert (hook["url"], hook["format"], hook["description"], hook["is_active"]) == (
        "https://example.com/hooks/odds", "json", "bot", True)
    assert "secret" not in got and got["secret_hint"] == hook["secret"][:10] + "..."
    assert listed["count"] == 1 and "secret" not in listed["data"][0]
    assert patched.status_code == 200, patched.text
    p = patched.json()
    assert p["format"] == "slack" and p["filters"]["threshold"] == 30
    assert p["filters"]["bookmakers"] == ["fanduel", "pinnacle"] and p["filters"]["kinds"] == ["prop"]
    assert (bad_patch.status_code, bad_patch.json()["param"]) == (400, "url")
    assert cleared["filters"]["bookmakers"] is None and cleared["filters"]["sports"] == "all"
    assert cleared["filters"]["threshold"] == 30 and cleared["is_active"] is False
    assert cleared["disabled_reason"] == "disabled by its owner"
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != hook["secret"]
    assert deleted.status_code == 200 and gone.status_code == 404


BAD_BODIES: list[tuple[dict[str, Any], str, str]] = [  # (body, the param named, words in the message)
    ({"url": "ftp://example.com/x"}, "url", "http or https"),
    ({"url": "https://user:pw@example.com/x"}, "url", "credentials"),
    ({"url": "http:///nohost"}, "url", "no host"),
    ({"url": "https://example.com/" + "a" * 2100}, "url", "too long"),
    ({"url": "https://exa mple.com/"}, "url", "spaces"),
    ({"url": "https://example.com:99999/"}, "url", "not a valid URL"),
    ({}, "url", "required"),
    ({"url": "https://example.com/", "threshold": 0}, "threshold", "between 1 and 200"),
    ({"url": "https://example.com/", "sports": "curling_xyz"}, "sports", "unknown sport"),
    ({"url": "https://example.com/", "bookmakers": ["nobook"]}, "bookmakers", "unknown bookmaker"),
    ({"url": "https://example.com/", "markets": "h3h"}, "markets", "unknown market"),
    ({"url": "https://example.com/", "direction": "up"}, "direction", "toward_favorite"),
    ({"url": "https://example.com/", "kinds": "future"}, "kinds", "unknown kind"),
    ({"url": "https://example.com/", "format": "xml"}, "format", "json, slack, discord"),
    ({"url": "https://example.com/", "events": ["arb_flagged"]}, "events", "odds_drop"),
    ({"url": "https://example.com/", "treshold": 5}, "treshold", "unknown field"),
    ({"url": "https://example.com/", "filters": {"sport": "x"}}, "sport", "unknown filter"),
]


async def test_bad_fields_are_400_naming_them(gateway: Running) -> None:
    key = gateway.key("business")
    with trio.fail_after(5):
        async with gateway.client() as c:
            for body, param, words in BAD_BODIES:
                r = await c.post("/v1/webhooks", json=body, headers=hdr(key))
                assert r.status_code == 400, (body, r.text)
                err = r.json()
                assert (err["error"], err["param"]) == ("invalid_param", param), body
                assert words in err["message"], (body, err)
            assert (await c.get("/v1/webhooks", headers=hdr(key))).json()["count"] == 0


async def test_other_keys_see_404_and_lower_tiers_403(gateway: Running) -> None:
    owner, other, pro = gateway.key("business"), gateway.key("enterprise"), gateway.key("pro")
    with trio.fail_after(5):
        async with gateway.client() as c:
            hook = await create_hook(c, owner, "http://127.0.0.1:9/x")
            base = f"/v1/webhooks/{hook['id']}"
            for method, path in (("GET", base), ("PATCH", base), ("DELETE", base), ("POST", base + "/test"),
                                 ("POST", base + "/rotate-secret"), ("GET", base + "/deliveries")):
                r = await c.request(method, path, headers=hdr(other), json={} if method == "PATCH" else None)
                assert (r.status_code, r.json()["error"]) == (404, "not_found"), (method, path)
            assert (await c.get("/v1/webhooks", headers=hdr(other))).json()["count"] == 0
            denied = await c.get("/v1/webhooks", headers=hdr(pro))
            bad_body = await c.post("/v1/webhooks", content=b"{nope", headers=hdr(owner))
            still = await c.get(base, headers=hdr(owner))
    assert (denied.status_code, denied.json()["error"]) == (403, "tier_required")
    assert (bad_body.status_code, bad_body.json()["error"]) == (400, "invalid_body")
    assert still.status_code == 200


async def test_test_endpoint_and_deliveries_listing(gateway: Running, receiver: Receiver) -> None:
    key = gateway.key("business")
    receiver.script = [200, 500]
    with trio.fail_after(5):
        async with gateway.client() as c:
            hook = await create_hook(c, key, receiver.url)
            ok = (await c.post(f"/v1/webhooks/{hook['id']}/test", headers=hdr(key))).json()
            bad = (await c.post(f"/v1/webhooks/{hook['id']}/test", headers=hdr(key))).json()
            rows = await deliveries(c, key, hook["id"])
            failed = (await c.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "failed"},
                                  headers=hdr(key))).json()
            bad_status = await c.get(f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "x"},
                                     headers=hdr(key))
            after = (await c.get(f"/v1/webhooks/{hook['id']}", headers=hdr(key))).json()
    assert (ok["delivered"], ok["status_code"], ok["error"]) == (True, 200, None)
    assert (bad["delivered"], bad["status_code"], bad["error"]) == (False, 500, "HTTP 500")
    req = receiver.requests[0]
    assert req.json()["event_type"] == "test" and req.headers["x-gateway-event-type"] == "test"
    assert req.json()["id"] == ok["delivery_id"] and req.json()["data"]["type"] == "odds_drop"
    assert verify(hook["secret"], req.headers["x-gateway-signature"], req.body, now=time.time())
    assert [(r["id"], r["status"], r["attempts"]) for r in rows] == [
        (bad["delivery_id"], "failed", 1), (ok["delivery_id"], "delivered", 1)]
    assert [r["id"] for r in failed["data"]] == [bad["delivery_id"]]
    assert bad_status.status_code == 400 and bad_status.json()["param"] == "status"
    assert after["consecutive_failures"] == 0  # tests never count toward auto-disable


async def test_cli_create_list_test_delete(gateway: Running, receiver: Receiver,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    gateway.key("business", name="bot1")
    db = ["--db", gateway.config.db_path()]

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main([*argv[:2], *db, *argv[2:]])
        out, err = capsys.readouterr()
        return code, out, err

    with trio.fail_after(5):
        code, out, _ = cli("webhooks", "create", "--key", "bot1", "--url", receiver.url, "--threshold", "25",
                           "--sports", "basketball_nba", "--format", "discord")
        assert code == 0 and out.strip().startswith("whsec_")
        code, out, _ = cli("webhooks", "list")
        hook_id = out.split("\t")[0]
        assert code == 0 and "bot1" in out and receiver.url in out and '"threshold":25' in out
        code, out, _ = await trio.to_thread.run_sync(cli, "webhooks", "test", hook_id)
        assert code == 0 and "delivered" in out and receiver.requests[0].json()["content"].startswith("[test]")
        code, _, err = cli("webhooks", "create", "--key", "bot1", "--url", "ftp://x")
        assert code == 2 and "--url" in err and "http or https" in err
        code, _, err = cli("webhooks", "create", "--key", "bot1", "--url", receiver.url, "--bookmakers", "zz")
        assert code == 2 and "--bookmakers: unknown bookmaker" in err
        assert cli("webhooks", "delete", hook_id)[0] == 0
        assert cli("webhooks", "list")[1] == ""
        assert cli("webhooks", "delete", hook_id)[0] == 2


@pytest.fixture
def quick_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's idle pass every 0.2 s instead of 5 (set before the gateway starts)."""
    from gateway.webhooks import worker

    monkeypatch.setattr(worker, "POLL_S", 0.2)


async def test_a_webhook_the_cli_creates_beside_a_running_gateway_gets_its_drops(
        quick_poll: None, gateway: Running, receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    """With no webhook active, commits do not wake the worker (issue 19): its idle pass
    finds one the CLI added, which then gets every drop from its creation on."""
    gateway.key("business", name="bot1")
    ingest = gateway.key(scopes=("ingest",))
    async with gateway.client() as c:
        await push(c, ingest, [quote(-110)])
        await push(c, ingest, [quote(-160)])  # a drop before the webhook: not for it
        code = main(["webhooks", "create", "--db", gateway.config.db_path(), "--key", "bot1", "--url", receiver.url,
                     "--threshold", "10"])
        assert code == 0, capsys.readouterr()
        await push(c, ingest, [quote(-110)])  # a drop after it
        with trio.fail_after(5):
            while not receiver.requests:  # noqa: ASYNC110
                await trio.sleep(0.05)
        await trio.sleep(0.5)
    bodies = [r.json() for r in receiver.requests]
    assert [(b["event_type"], b["data"]["prev"], b["data"]["new"]) for b in bodies] == [("odds_drop", -160, -110)]


def test_a_deleted_key_takes_its_webhooks_and_its_id_brings_none(tmp_path: Any) -> None:
    """The demo key is deleted and made again at each start; api_keys ids are not
    AUTOINCREMENT, so the new key can get the old id, and must not inherit its webhooks."""
    import sqlite3

    from gateway.auth import create_key, delete_key_named
    from gateway.config import config_from_dict
    from gateway.store import apply_schema

    tiers = config_from_dict({}).tiers
    conn = sqlite3.connect(tmp_path / "k.db")
    apply_schema(conn)

    def hook(key_name: str) -> int:
        key_id = conn.execute("SELECT id FROM api_keys WHERE name = ?", (key_name,)).fetchone()[0]
        cur = conn.execute("INSERT INTO webhooks (key_id, url, filters, secret, created_ms, updated_ms) "
                           "VALUES (?, 'http://example.com/', '{}', 's', 0, 0)", (key_id,))
        conn.execute("INSERT INTO webhook_deliveries (id, webhook_id, event_type, body, status, created_ms, "
                     "updated_ms) VALUES (?, ?, 'odds_drop', '{}', 'pending', 0, 0)", (f"dlv_{cur.lastrowid}",
                                                                                      cur.lastrowid))
        return key_id

    create_key(conn, name="other", tier="enterprise", tiers=tiers)
    create_key(conn, name="demo", tier="enterprise", tiers=tiers)
    other, demo = hook("other"), hook("demo")
    delete_key_named(conn, "demo")
    create_key(conn, name="demo", tier="enterprise", tiers=tiers)
    new_demo = conn.execute("SELECT id FROM api_keys WHERE name = 'demo'").fetchone()[0]
    assert new_demo == demo  # the id came back: what matters is that nothing came with it
    assert conn.execute("SELECT key_id FROM webhooks").fetchall() == [(other,)]
    assert conn.execute("SELECT COUNT(*) FROM webhook_deliveries").fetchone()[0] == 1
    conn.close()
