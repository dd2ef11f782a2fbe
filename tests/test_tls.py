"""TLS without a proxy: `[server] tls_cert` / `tls_key`, Hypercorn serving https and wss.

Certificates from trustme; clients: httpx (HTTP/1.1 and HTTP/2), `websockets`, Node's `ws`
(installed with npm into a cache folder; skipped, saying so, when npm cannot), and
Chromium (the dashboard over https, its wss:// socket, and an EventSource). Over TLS the
SSE and WebSocket direct writes step aside (`plain_socket_fd` is None for an SSL stream)
and frames go through Hypercorn: the tests check that every stream still works, and
`bench/tls_cost.py` measures what that costs. Bad certificate files are a one-line
start-up error with exit 2 (real `gateway serve` processes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from .conftest import Running, make_config, start_gateway
from .helpers import next_of, push, quote, sse_events
from .selfhost import Certs, make_certs

SPORT = "basketball_nba"
NODE = shutil.which("node")
NPM = shutil.which("npm")
NODE_CACHE = Path(os.environ.get("GATEWAY_TEST_NODE_CACHE", Path.home() / ".cache" / "gateway-tests" / "node"))


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "certs")


@pytest.fixture
async def gw(nursery: trio.Nursery, tmp_path: Path, certs: Certs) -> AsyncIterator[Running]:
    config = make_config(tmp_path, server={"tls_cert": str(certs.cert_pem), "tls_key": str(certs.key_pem),
                                           "session_secret": "tls-test"})
    running = await start_gateway(nursery, config)
    yield running
    running.stop.set()
    with trio.fail_after(10):
        await running.done.wait()


def _client(gw: Running, certs: Certs, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=gw.url, verify=certs.client_context(), timeout=httpx.Timeout(10, read=30), **kw)


async def _drop(c: httpx.AsyncClient, ingest: str, event: str, prev: int = -110, new: int = -130) -> None:
    await push(c, ingest, [quote(prev, event=event)])
    await push(c, ingest, [quote(new, event=event)])


@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
async def test_https_rest_and_sse(gw: Running, certs: Certs, http2: bool) -> None:
    assert gw.url.startswith("https://127.0.0.1:")
    key, ingest = gw.key("business"), gw.key(scopes=("ingest",))
    with trio.fail_after(20):
        async with _client(gw, certs, http2=http2) as c:
            r = await c.get("/healthz")
            assert r.status_code == 200 and r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            async with c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key, "heartbeat_s": 1}) as resp:
                events = sse_events(resp)
                await next_of(events, "connected")
                await next_of(events, "heartbeat")  # the stream's own task writes over TLS too
                await _drop(c, ingest, "t1")
                first = await next_of(events, "odds_drop")
                await _drop(c, ingest, "t2", -130, -150)
                second = await next_of(events, "odds_drop")  # live: past the first write
            assert (first.data["event_id"], second.data["event_id"]) == ("t1", "t2")
            async with c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key},
                                headers={"Last-Event-ID": first.id or ""}) as resp:
                assert (await next_of(sse_events(resp), "odds_drop")).data["event_id"] == "t2"
        async with httpx.AsyncClient(base_url=gw.url, timeout=5) as untrusting:  # the system CAs only
            with pytest.raises(httpx.ConnectError):
                await untrusting.get("/healthz")


async def test_wss_with_the_websockets_client(gw: Running, certs: Certs) -> None:
    from websockets.sync.client import connect

    key, ingest = gw.key("business"), gw.key(scopes=("ingest",))
    url = gw.url.replace("https", "wss") + f"/ws/odds/{SPORT}?apiKey={key}"

    async def push_move() -> None:
        async with _client(gw, certs) as c:
            await push(c, ingest, [quote(-115, event="w1")])

    def client() -> tuple[list[str], int | None]:
        seen: list[str] = []
        with connect(url, ssl=certs.client_context(), open_timeout=10) as ws:
            while "odds_update" not in seen:
                seen.append(json.loads(ws.recv(timeout=10))["type"])
                if seen[-1] == "initial_state":
                    trio.from_thread.run(push_move)
            ws.send(json.dumps({"type": "ping"}))
            while seen[-1] != "pong":
                seen.append(json.loads(ws.recv(timeout=10))["type"])
            ws.ping().wait(10)  # a transport ping answered over TLS
        return seen, ws.close_code

    with trio.fail_after(30):
        seen, code = await trio.to_thread.run_sync(client)
    assert seen[:2] == ["connected", "initial_state"] and "odds_update" in seen and code == 1000


NODE_CLIENT = r"""
const WebSocket = require("ws");
const fs = require("fs");
const ws = new WebSocket(process.argv[2], { ca: fs.readFileSync(process.argv[3]) });
ws.on("message", (data) => {
  const msg = JSON.parse(data);
  console.log(msg.type);
  if (msg.type === "odds_update") ws.close(1000, "done");
});
ws.on("ping", () => console.log("transport-ping"));
ws.on("close", (code) => { console.log("closed " + code); process.exit(0); });
ws.on("error", (err) => { console.log("error " + err.message); process.exit(1); });
"""


def _node_ws() -> Path:
    """A folder with `ws` from npm, installed once into a cache; skip the test if impossible."""
    if NODE is None or NPM is None:
        pytest.skip("node and npm are not installed")
    if not (NODE_CACHE / "node_modules" / "ws" / "package.json").exists():
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([NPM, "install", "--prefix", str(NODE_CACHE), "--no-audit", "--no-fund", "ws@8"],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            pytest.skip(f"npm could not install ws: {done.stderr.strip().splitlines()[-1:]}")
    return NODE_CACHE


async def test_wss_with_node_ws(gw: Running, certs: Certs, tmp_path: Path) -> None:
    modules = await trio.to_thread.run_sync(_node_ws)
    script = tmp_path / "client.js"
    script.write_text(NODE_CLIENT)
    key, ingest = gw.key("business"), gw.key(scopes=("ingest",))
    url = gw.url.replace("https", "wss") + f"/ws/odds/{SPORT}?apiKey={key}"
    env = {**os.environ, "NODE_PATH": str(modules / "node_modules")}
    lines: list[str] = []
    with trio.fail_after(30):
        proc = await trio.lowlevel.open_process([NODE, str(script), url, str(certs.ca_pem)],  # type: ignore[list-item]
                                                stdout=subprocess.PIPE, env=env)
        try:
            buf = b""
            assert proc.stdout is not None
            while not any(line.startswith(("closed", "error")) for line in lines):
                chunk = await proc.stdout.receive_some()
                if not chunk:
                    break
                buf += chunk
                *done, buf = buf.split(b"\n")
                lines += [d.decode() for d in done]
                if "initial_state" in lines and not any(x == "pushed" for x in lines):
                    lines.append("pushed")
                    async with _client(gw, certs) as c:
                        await push(c, ingest, [quote(-120, event="n1")])
        finally:
            with trio.move_on_after(5):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()
    frames = [x for x in lines if x not in ("transport-ping", "pushed")]
    assert frames[:3] == ["connected", "initial_state", "odds_update"], lines
    assert "transport-ping" in lines and lines[-1] == "closed 1000", lines  # Hypercorn pings over TLS


async def test_chromium_dashboard_wss_and_eventsource_over_https(gw: Running, certs: Certs) -> None:
    from .test_dashboard_browser import BROWSER_ARGS, CHROMIUM, live_quote

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (run .ci/browser-deps, or set GATEWAY_TEST_CHROMIUM)")
    key, ingest = gw.key("business", name="browser"), gw.key(scopes=("ingest",))

    async def push_live(price: int) -> None:
        async with _client(gw, certs) as c:
            await push(c, ingest, [live_quote(price)])

    def scenario() -> dict[str, Any]:
        from playwright.sync_api import expect, sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS + certs.chromium_args())
            try:
                context = browser.new_context()
                page = context.new_page()
                page.set_default_timeout(15_000)
                expect.set_options(timeout=15_000)
                sockets: list[str] = []
                page.on("websocket", lambda ws: sockets.append(ws.url))
                page.goto(f"{gw.url}/dashboard")
                page.fill("#login-key", key)
                page.click("#login-submit")
                expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
                page.evaluate("""(url) => { window.seen = []; const es = new EventSource(url);
                    es.onmessage = (e) => window.seen.push(JSON.parse(e.data).type); }""",
                              f"/v1/odds-drop/{SPORT}?apiKey={key}")
                page.wait_for_function("() => window.seen.includes('connected')")
                trio.from_thread.run(push_live, -150)
                page.wait_for_function("() => window.seen.includes('odds_drop')")
                expect(page.locator("#drops li").filter(has_text="-150")).to_have_count(1)  # over wss
                return {"sockets": sockets, "cookies": context.cookies()}
            finally:
                browser.close()

    with trio.fail_after(60):
        await push_live(-110)
        seen = await trio.to_thread.run_sync(scenario, abandon_on_cancel=True)
    assert seen["sockets"] and all(u.startswith(gw.url.replace("https", "wss")) for u in seen["sockets"])
    session = [c for c in seen["cookies"] if c["name"] == "gw_session"]
    assert session and session[0]["secure"]


# ------------------------------------------------------------------------------- start-up errors


def _serve(tmp_path: Path, server: dict[str, str]) -> subprocess.CompletedProcess[str]:
    lines = ["[server]", "port = 0"] + [f"{k} = {json.dumps(v)}" for k, v in server.items()]
    lines += ["[demo]", "print_key = false"]
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    return subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(config), "--no-feeds"],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)


@pytest.mark.parametrize("case", ["missing-cert", "missing-key", "not-pem", "wrong-key", "key-without-cert",
                                  "a-directory"])
def test_bad_tls_files_are_a_one_line_start_up_error(tmp_path: Path, certs: Certs, case: str) -> None:
    other = make_certs(tmp_path / "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    server = {
        "missing-cert": {"tls_cert": "nope.pem", "tls_key": str(certs.key_pem)},
        "missing-key": {"tls_cert": str(certs.cert_pem), "tls_key": "nope.key"},
        "not-pem": {"tls_cert": str(garbage), "tls_key": str(certs.key_pem)},
        "wrong-key": {"tls_cert": str(certs.cert_pem), "tls_key": str(other.key_pem)},
        "key-without-cert": {"tls_key": str(certs.key_pem)},
        "a-directory": {"tls_cert": str(tmp_path), "tls_key": str(certs.key_pem)},
    }[case]
    done = _serve(tmp_path, server)
    expected = {"missing-cert": f"{tmp_path / 'nope.pem'} does not exist",
                "missing-key": f"{tmp_path / 'nope.key'} does not exist",
                "not-pem": "are not a PEM certificate and its private key",
                "wrong-key": "are not a PEM certificate and its private key",
                "key-without-cert": "tls_cert and tls_key go together",
                "a-directory": "cannot read"}[case]
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "gateway.db").exists()  # refused before the database was touched


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: an unreadable key cannot be made here")
def test_unreadable_key_is_a_one_line_start_up_error(tmp_path: Path, certs: Certs) -> None:
    certs.key_pem.chmod(0)
    done = _serve(tmp_path, {"tls_cert": str(certs.cert_pem), "tls_key": str(certs.key_pem)})
    assert done.returncode == 2 and "is not readable by this user" in done.stderr, done


def test_unreadable_file_message(tmp_path: Path, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check as above, where the suite runs as root (the file system cannot refuse
    root): `open` refuses as it would for another user."""
    import builtins

    from gateway import tls
    from gateway.config import ConfigError

    real_open = builtins.open

    def refusing(path: Any, *args: Any, **kw: Any) -> Any:
        if str(path) == str(certs.key_pem):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(builtins, "open", refusing)
    config = make_config(tmp_path, server={"tls_cert": str(certs.cert_pem), "tls_key": str(certs.key_pem)})
    with pytest.raises(ConfigError, match=r"tls_key: .*server.key is not readable by this user"):
        tls.tls_files(config)
