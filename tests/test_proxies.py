"""Behind a reverse proxy: the shipped deploy/nginx.conf and deploy/Caddyfile, each started as
this test's own process in front of a real gateway, with TLS at the proxy (trustme) and a
2 s proxy read timeout; and `[server] trusted_proxies`, which alone lets X-Forwarded-For
and X-Forwarded-Proto count (access log, client address, the cookie's Secure flag).

Clients connect from 127.0.0.2 where they can, so that the address the gateway logs shows
whose address it believed (the proxies connect to it from 127.0.0.1)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from gateway.web.proxies import TrustedProxies, parse_address

from .conftest import Running, make_config, start_gateway
from .helpers import next_of, push, quote, sse_events
from .selfhost import CADDY, NGINX, Certs, Proxy, make_certs, needs, start_proxy

SPORT = "basketball_nba"
CLIENT_IP = "127.0.0.2"  # the test clients' source address (the whole 127/8 is loopback on Linux)
READ_TIMEOUT_S = 2  # the proxy's read timeout in the rendered configs

PROXIES = [pytest.param("nginx", marks=needs(NGINX, "nginx")), pytest.param("caddy", marks=needs(CADDY, "caddy"))]


# ------------------------------------------------------------------------- the rule itself (pure)


@pytest.mark.parametrize(("peer", "xff", "expected"), [
    ("10.0.0.5", ["6.6.6.6"], "10.0.0.5"),                        # untrusted peer: header ignored
    ("127.0.0.1", ["203.0.113.9"], "203.0.113.9"),                # trusted proxy: its client
    ("127.0.0.1", ["6.6.6.6, 203.0.113.9"], "203.0.113.9"),       # a forged hop left of the real client
    ("127.0.0.1", ["203.0.113.9, 127.0.0.9"], "203.0.113.9"),     # two trusted proxies in a row
    ("127.0.0.1", ["6.6.6.6", "203.0.113.9"], "203.0.113.9"),     # repeated header lines, in order
    ("127.0.0.1", ["garbage, 203.0.113.9"], "203.0.113.9"),
    ("127.0.0.1", ["203.0.113.9, garbage"], "127.0.0.1"),          # believe nothing past garbage
    ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("127.0.0.1", ["198.51.100.7:5555"], "198.51.100.7"),
    ("::ffff:127.0.0.1", ["203.0.113.9"], "203.0.113.9"),         # IPv4-mapped peer
])
def test_client_address_is_the_rightmost_untrusted_hop(peer: str, xff: list[str], expected: str) -> None:
    assert TrustedProxies(["127.0.0.0/8"]).client(peer, xff) == expected


def test_parse_address() -> None:
    assert str(parse_address(" 10.1.2.3 ")) == "10.1.2.3"
    assert parse_address("unknown") is None and parse_address("") is None and parse_address("1.2.3") is None


def test_scope_rewrite_only_from_trusted_peers() -> None:
    proxies = TrustedProxies(["127.0.0.1/32", "::1"])
    headers = [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]
    trusted: dict[str, Any] = {"type": "websocket", "client": ("127.0.0.1", 4000), "scheme": "ws", "headers": headers}
    proxies.resolve(trusted)
    assert trusted["client"] == ("203.0.113.9", 0) and trusted["scheme"] == "wss"
    assert trusted["gateway.peer"] == ("127.0.0.1", 4000)
    other: dict[str, Any] = {"type": "http", "client": ("127.0.0.2", 4000), "scheme": "http", "headers": headers}
    proxies.resolve(other)
    assert other["client"] == ("127.0.0.2", 4000) and other["scheme"] == "http"


# ------------------------------------------------------- a forged header from an untrusted peer


def _client(base: str, *, source: str = CLIENT_IP, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, transport=httpx.AsyncHTTPTransport(local_address=source, **kw),
                             timeout=httpx.Timeout(10, read=30))


FORGED = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}


def _logged_clients(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().split()[0] for r in caplog.records if r.name == "gateway.access"]


@pytest.mark.parametrize("trusted", [[], ["192.0.2.0/24"]], ids=["no-trusted-proxies", "peer-not-trusted"])
async def test_forged_forwarded_headers_change_nothing(nursery: trio.Nursery, tmp_path: Path, trusted: list[str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """From a peer that is not a trusted proxy: no Secure cookie over http, the real address
    in the access log (REST and SSE), and the WebSocket Origin check uses the real scheme."""
    caplog.set_level(logging.INFO, logger="gateway.access")
    gw = await start_gateway(nursery, make_config(tmp_path, server={"trusted_proxies": trusted}))
    key = gw.key("business")
    with trio.fail_after(15):
        async with _client(gw.url) as c:
            login = await c.post("/v1/session", json={"api_key": key}, headers=FORGED)
            assert login.status_code == 200
            assert "secure" not in login.headers["set-cookie"].lower()  # forged https: no Secure flag
            r = await c.get("/v1/sports", params={"apiKey": key}, headers=FORGED)
            assert r.status_code == 200
            async with c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key}, headers=FORGED) as resp:
                await next_of(sse_events(resp), "connected")
        # the cookie path of /ws/live compares Origin with the scheme the request really came over
        cookie = login.cookies["gw_session"]
        ws_url = gw.url.replace("http", "ws") + f"/ws/live/{SPORT}"
        headers = [(b"Cookie", f"gw_session={cookie}".encode()), (b"X-Forwarded-Proto", b"https"),
                   (b"Origin", gw.url.replace("http", "https").encode())]
        async with open_websocket_url(ws_url, extra_headers=headers) as ws:
            code, _ = await _close_code(ws)
            assert code == 1008  # forbidden_origin: the forged scheme did not make https:// same-origin
    gw.stop.set()
    clients = _logged_clients(caplog)
    assert len(clients) >= 3 and set(clients) == {CLIENT_IP}, clients


async def test_trusted_proxy_headers_are_believed(nursery: trio.Nursery, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The same request from a trusted peer (127.0.0.1 here, standing for a proxy): the
    forwarded address is logged and the cookie is Secure."""
    caplog.set_level(logging.INFO, logger="gateway.access")
    gw = await start_gateway(nursery, make_config(tmp_path, server={"trusted_proxies": ["127.0.0.1/32"]}))
    key = gw.key("business")
    with trio.fail_after(15):
        async with _client(gw.url, source="127.0.0.1") as c:
            login = await c.post("/v1/session", json={"api_key": key}, headers=FORGED)
            assert "; secure" in login.headers["set-cookie"].lower()
            async with c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key}, headers=FORGED) as resp:
                await next_of(sse_events(resp), "connected")
    gw.stop.set()
    assert set(_logged_clients(caplog)) == {"6.6.6.6"}


async def test_websocket_liveness_still_applies_behind_the_proxy_wrapper(nursery: trio.Nursery,
                                                                       tmp_path: Path) -> None:
    """ws_liveness finds the app's config through the ASGI wrapper trusted_proxies adds: a
    client that ignores pings is still closed with 1011."""
    from .test_ws import raw_silent_client

    config = make_config(tmp_path, server={"trusted_proxies": ["127.0.0.1/32"]},
                         streams={"ws_ping_interval_s": 0.2, "ws_idle_timeout_s": 0.8})
    gw = await start_gateway(nursery, config)
    with trio.fail_after(10):
        code, after = await raw_silent_client(gw.url, gw.key("business"))
    gw.stop.set()
    assert code == 1011 and after < 3


# ------------------------------------------------------------------- through nginx and Caddy


class Through:
    """A gateway and a proxy in front of it, TLS at the proxy."""

    def __init__(self, gw: Running, proxy: Proxy, certs: Certs) -> None:
        self.gw, self.proxy, self.certs = gw, proxy, certs
        self.url = proxy.url
        self.ingest = gw.key("enterprise", scopes=("ingest",), name="ingest")

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return _client(self.url, verify=self.certs.client_context(), **kw)

    def ws_url(self, path: str) -> str:
        return self.url.replace("https", "wss") + path

    def ws(self, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
        return open_websocket_url(self.ws_url(path), ssl_context=self.certs.client_context(),
                                  extra_headers=headers or [])


@pytest.fixture(params=PROXIES)
async def through(request: pytest.FixtureRequest, nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Through]:
    certs = make_certs(tmp_path / "certs")
    config = make_config(tmp_path, server={"trusted_proxies": ["127.0.0.1/32"], "session_secret": "proxy-test"},
                         streams={"ws_ping_interval_s": 0.5, "ws_idle_timeout_s": 3.0, "heartbeat_s": 1})
    gw = await start_gateway(nursery, config)
    upstream = int(gw.url.rsplit(":", 1)[1])
    proxy = await trio.to_thread.run_sync(lambda: start_proxy(request.param, tmp_path / request.param,
                                                              upstream_port=upstream, certs=certs))
    try:
        yield Through(gw, proxy, certs)
    finally:
        await trio.to_thread.run_sync(proxy.stop)
        gw.stop.set()
        with trio.fail_after(10):
            await gw.done.wait()


def _drop_rows(event: str, prev: int, new: int) -> list[list[dict[str, Any]]]:
    return [[quote(prev, event=event)], [quote(new, event=event)]]


async def _make_drop(c: httpx.AsyncClient, ingest: str, event: str, prev: int, new: int) -> None:
    for rows in _drop_rows(event, prev, new):
        await push(c, ingest, rows)


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
async def test_sse_is_delivered_at_once_and_resumes_by_last_event_id(through: Through, http2: bool) -> None:
    key = through.gw.key("business")
    with trio.fail_after(30):
        async with through.client(http2=http2) as c:
            async with c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key, "heartbeat_s": 30}) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                assert resp.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
                events = sse_events(resp)
                await next_of(events, "connected")
                await push(c, through.ingest, [quote(-110, event="e1")])
                await push(c, through.ingest, [quote(-130, event="e1")])
                pushed = time.monotonic()
                first = await next_of(events, "odds_drop")
                took = time.monotonic() - pushed
            assert took < 2.0, f"a {through.proxy.name} buffer held a frame for {took:.2f} s"
            assert first.data["event_id"] == "e1" and first.id is not None
            # missed while disconnected, then replayed from Last-Event-ID through the proxy
            await _make_drop(c, through.ingest, "e2", -110, -140)
            async with c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key},
                                headers={"Last-Event-ID": first.id}) as resp:
                events = sse_events(resp)
                replayed = await next_of(events, "odds_drop")
                assert replayed.data["event_id"] == "e2" and int(replayed.id or 0) > int(first.id)


@pytest.mark.parametrize("heartbeat_s", [1, 5])
async def test_heartbeats_keep_an_idle_stream_open_past_the_proxy_read_timeout(through: Through,
                                                                               heartbeat_s: int) -> None:
    """heartbeat_s=1 < the proxy's 2 s read timeout: open for 3x that timeout. heartbeat_s=5:
    the proxy cuts the stream (so the read timeout is real and it is the heartbeats that count)."""
    key = through.gw.key("business")
    hold_s = 3 * READ_TIMEOUT_S
    beats, ended_after = 0, None
    started = time.monotonic()
    async with through.client() as c:
        with trio.move_on_after(hold_s):
            try:
                async with c.stream("GET", f"/v1/odds-drop/{SPORT}",
                                    params={"apiKey": key, "heartbeat_s": heartbeat_s}) as resp:
                    async for ev in sse_events(resp):
                        beats += ev.data["type"] == "heartbeat"
            except httpx.HTTPError:
                pass  # cut by the proxy mid-body
            ended_after = time.monotonic() - started
    if heartbeat_s == 1:
        assert ended_after is None and beats >= hold_s // 2, (ended_after, beats)
    else:
        assert ended_after is not None and ended_after < hold_s and beats == 0, (ended_after, beats)


async def _close_code(ws: WebSocketConnection) -> tuple[int, list[dict[str, Any]]]:
    seen = []
    try:
        while True:
            seen.append(json.loads(await ws.get_message()))
    except ConnectionClosed as exc:
        return exc.reason.code, seen


async def test_websocket_upgrade_pings_and_close_codes(through: Through) -> None:
    key, free = through.gw.key("business"), through.gw.key("free")
    with trio.fail_after(30):
        async with through.client() as c, through.ws(f"/ws/odds/{SPORT}?apiKey={key}") as ws:
            assert json.loads(await ws.get_message())["type"] == "connected"
            await next_type(ws, "initial_state")
            await push(c, through.ingest, [quote(-110, event="w1")])
            assert (await next_type(ws, "odds_update"))["data"][0]["event_id"] == "w1"
            await ws.ping(b"client-ping")  # returns when the pong came back through the proxy
            await ws.send_message(json.dumps({"type": "ping"}))
            await next_type(ws, "pong")
            # idle past the proxy's read timeout and the gateway's 3 s ping timeout: the
            # gateway's pings and our pongs pass through, or it would close 1011 / the proxy cut
            await trio.sleep(2 * READ_TIMEOUT_S)
            await push(c, through.ingest, [quote(-120, event="w1")])
            update = await next_type(ws, "odds_update")
            assert update["data"][0]["home_ml"] == -120
        for path, code in ((f"/ws/odds/{SPORT}", 4003), (f"/ws/odds/{SPORT}?apiKey=gw_nope", 1008),
                           (f"/ws/odds/{SPORT}?apiKey={free}", 4001)):
            async with through.ws(path) as ws:
                got, frames = await _close_code(ws)
            assert got == code and frames[-1]["type"] == "error", (path, got, frames)


async def next_type(ws: WebSocketConnection, *types: str) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await ws.get_message())
        if msg["type"] in types:
            return msg


async def test_dashboard_logs_in_and_client_addresses_come_from_the_proxy(
        through: Through, caplog: pytest.LogCaptureFixture) -> None:
    """POST /v1/session over https through the proxy: a Secure cookie; the cookie routes and the
    cookie-authenticated /ws/live work through it; the gateway logs the client's address, not
    the proxy's, and not a X-Forwarded-For the client forged."""
    caplog.set_level(logging.INFO, logger="gateway.access")
    key = through.gw.key("business", name="dash")
    origin = {"Origin": through.url}
    with trio.fail_after(30):
        async with through.client() as c:
            page = await c.get("/dashboard")
            assert page.status_code == 200 and f"wss://127.0.0.1:{through.proxy.port}" in page.headers[
                "content-security-policy"]
            login = await c.post("/v1/session", json={"api_key": key}, headers={**origin, **FORGED})
            assert login.status_code == 200, login.text
            assert re.search(r";\s*secure", login.headers["set-cookie"], re.I), login.headers["set-cookie"]
            assert (await c.get("/v1/session", headers=origin)).json()["name"] == "dash"
            await push(c, through.ingest, [quote(-110, event="d1", commence_time=int(time.time() * 1000) - 60_000)])
            sports = await c.get("/dashboard/api/sports", headers=origin)
            assert sports.status_code == 200 and SPORT in [s["key"] for s in sports.json()]
            cookie = c.cookies["gw_session"]
        headers = [(b"Cookie", f"gw_session={cookie}".encode()), (b"Origin", through.url.encode())]
        async with through.ws(f"/ws/live/{SPORT}", headers) as ws:
            hello = json.loads(await ws.get_message())
            assert hello["type"] == "connected" and hello["tier"] == "business"
    clients = {c for c in _logged_clients(caplog)}
    assert clients == {CLIENT_IP}, clients  # not 127.0.0.1 (the proxy), not 6.6.6.6 (forged)


# ------------------------------------------------------------------------------------ Chromium


async def test_dashboard_in_chromium_through_the_proxy(through: Through) -> None:
    from .test_dashboard_browser import BROWSER_ARGS, CHROMIUM, live_quote

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (run .ci/browser-deps, or set GATEWAY_TEST_CHROMIUM)")
    key = through.gw.key("business", name="chromium")

    def scenario() -> dict[str, Any]:
        from playwright.sync_api import expect, sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS + through.certs.chromium_args())
            try:
                context = browser.new_context()
                page = context.new_page()
                page.set_default_timeout(15_000)
                expect.set_options(timeout=15_000)
                sockets: list[str] = []
                page.on("websocket", lambda ws: sockets.append(ws.url))
                page.goto(f"{through.url}/dashboard")
                page.fill("#login-key", key)
                page.click("#login-submit")
                expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
                expect(page.locator("#who")).to_have_text("chromium · business")
                trio.from_thread.run(push_live, -150)
                expect(page.locator("#drops li").filter(has_text="-150")).to_have_count(1)
                cookies = context.cookies()
                return {"sockets": sockets, "cookies": cookies}
            finally:
                browser.close()

    async def push_live(price: int) -> None:
        async with through.client() as c:
            await push(c, through.ingest, [live_quote(price)])

    with trio.fail_after(60):
        await push_live(-110)  # the board shows active sports only
        seen = await trio.to_thread.run_sync(scenario, abandon_on_cancel=True)
    assert seen["sockets"] and all(u.startswith(f"wss://127.0.0.1:{through.proxy.port}/") for u in seen["sockets"])
    session = [c for c in seen["cookies"] if c["name"] == "gw_session"]
    assert session and session[0]["secure"] and session[0]["httpOnly"]
