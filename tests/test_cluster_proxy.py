"""nginx in front of a cluster (deploy/nginx-cluster.conf, rendered as tests/selfhost.py renders
deploy/nginx.conf): SSE and WebSocket to the edges through one https origin, ingest routed to
the writer, and a stream resumed with Last-Event-ID across a stopped edge."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.cluster_procs import Cluster, Load, cluster, needs_redis
from tests.helpers import next_of, sse_events
from tests.selfhost import DEPLOY, NGINX, Certs, Proxy, free_port, make_certs, needs, substitute

pytestmark = [needs_redis, needs(NGINX, "nginx")]
SPORT = "basketball_nba"


def start_nginx(tmp: Path, c: Cluster, certs: Certs) -> Proxy:
    import subprocess
    import time

    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    a, b = c.edges
    site = substitute((DEPLOY / "nginx-cluster.conf").read_text(), {
        "server 127.0.0.1:8081;": f"server 127.0.0.1:{a.port};",
        "server 127.0.0.1:8082;": f"server 127.0.0.1:{b.port};",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{c.writer.port};",
        "    listen 80;\n    listen [::]:80;": f"    listen 127.0.0.1:{free_port()};",
        "    listen 443 ssl http2;": f"    listen 127.0.0.1:{port} ssl http2;",
        "    listen [::]:443 ssl http2;\n": "",
        "/etc/letsencrypt/live/odds.example.com/fullchain.pem": str(certs.cert_pem),
        "/etc/letsencrypt/live/odds.example.com/privkey.pem": str(certs.key_pem),
    })
    (tmp / "gateway.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {tmp}/{kind}_temp;" for kind in ("client_body", "proxy", "fastcgi",
                                                                              "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log info;\n"
        f"events {{ worker_connections 512; }}\nhttp {{\n    access_log {tmp}/access.log;\n{temp}\n"
        f"    include {tmp}/gateway.conf;\n}}\n")
    assert NGINX is not None
    with (tmp / "nginx.out").open("wb") as out:
        proc = subprocess.Popen([NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf"),
                                 "-g", "daemon off;"], stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    proxy = Proxy("nginx", port, proc, tmp / "error.log")
    deadline = time.monotonic() + 15
    import socket

    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proxy
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proxy.stop()
                raise AssertionError(f"nginx did not start: {proxy.logs()}") from None
            time.sleep(0.05)


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[Cluster, Proxy, Certs]]:
    certs = make_certs(tmp_path / "certs")
    with cluster(tmp_path, server={"trusted_proxies": ["127.0.0.1/32"]}) as c:
        proxy = start_nginx(tmp_path / "nginx", c, certs)
        try:
            yield c, proxy, certs
        finally:
            proxy.stop()


def _streams(edge_url: str) -> float:
    text = httpx.get(edge_url + "/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("gateway_stream_connections{"))


async def test_sse_and_websocket_through_nginx_resume_across_a_stopped_edge(
        behind_nginx: tuple[Cluster, Proxy, Certs]) -> None:
    c, proxy, certs = behind_nginx
    key, ingest = c.key("nginx-reader"), c.key("nginx-loader", scopes=("ingest",))
    await c.known(key)
    load = Load(proxy.url, ingest)  # ingest through nginx: routed to the writer
    load_client = httpx.AsyncClient(verify=certs.client_context(), timeout=30)

    async def changes(n: int) -> None:
        for _ in range(n):
            k = load.rng.choice(list(load.cents))
            load.cents[k] += load.rng.choice((-12, 12))
            await load.post(load_client, [load.row(k)])

    await load.post(load_client, [load.row(k) for k in load.cents])
    start = c.last_seq()
    got: list[int] = []
    with trio.fail_after(40):
        async with httpx.AsyncClient(base_url=proxy.url, verify=certs.client_context(),
                                     timeout=httpx.Timeout(10, read=None)) as client:
            params = {"apiKey": key, "threshold": 1, "heartbeat_s": 1}
            async with client.stream("GET", f"/v1/odds-drop/{SPORT}", params=params,
                                     headers={"Last-Event-ID": str(start)}) as resp:
                assert resp.status_code == 200
                events = sse_events(resp)
                await next_of(events, "connected")
                await changes(5)
                while len(got) < 5:
                    ev = await next_of(events, "odds_drop")
                    got.append(int(ev.id or 0))
                serving = next(e for e in c.edges if _streams(e.url) >= 1)
                serving.stop()  # SIGTERM: the stream gets its final frame and ends
                with pytest.raises((httpx.HTTPError, AssertionError)):
                    await next_of(events, "odds_drop")  # the stream ended: no more drops on it
            await changes(5)  # while the client is away
            async with client.stream("GET", f"/v1/odds-drop/{SPORT}", params=params,
                                     headers={"Last-Event-ID": str(got[-1])}) as resp:
                assert resp.status_code == 200  # nginx tried the stopped edge, then the other
                events = sse_events(resp)
                await next_of(events, "connected")
                while len(got) < 10:
                    ev = await next_of(events, "odds_drop")
                    got.append(int(ev.id or 0))
        assert got == c.drop_ids(SPORT, start)
        other = next(e for e in c.edges if e is not serving)
        assert _streams(other.url) == 0  # the resumed stream has ended

        ws_url = proxy.url.replace("https", "wss") + f"/ws/odds/{SPORT}?apiKey={key}"
        async with open_websocket_url(ws_url, ssl_context=certs.client_context()) as ws:
            assert json.loads(await ws.get_message())["type"] == "connected"
            snap = json.loads(await ws.get_message())
            assert snap["type"] == "initial_state" and snap["count"] > 0
            await changes(1)
            while (msg := json.loads(await ws.get_message()))["type"] != "odds_update":
                pass
            assert msg["id"] > got[-1]
        r = await load_client.post(proxy.url + "/v1/webhooks", json={"url": "https://example.com/h"},
                                   headers={"X-API-Key": key})
        assert r.status_code in (201, 403)  # the writer answered (not 421 from an edge)
    await load_client.aclose()
