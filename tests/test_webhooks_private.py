"""`[webhooks] block_private_addresses` (issue 14.8): every spelling of loopback is refused,
names are resolved and the address connected to is the one checked (no DNS-rebinding
window), for deliveries and `/test`; off, `/test` reports what an internal host answered."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gateway.webhooks import guard, worker

from .conftest import Running, make_config, start_gateway
from .helpers import push, quote
from .test_sigterm import free_port
from .test_webhooks_delivery import Receiver, create_hook, deliveries, start_receiver, until

SHIPPED = Path(__file__).resolve().parent.parent / "config.toml"


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(worker, "RETRY_SCHEDULE_S", (0.0,))
    monkeypatch.setattr(worker, "TIMEOUT_S", 2.0)
    monkeypatch.setattr(worker, "MIN_PASS_INTERVAL_S", 0.01)
    yield


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Receiver:
    return await start_receiver(nursery)


class FakeDns:
    """Answers for names the tests make up; counts the lookups."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise OSError(f"unknown name {host}")
        return self.answers[host]


# -- the transport: the checked address is the one connected to ------------------------------

async def test_the_request_goes_to_the_checked_address_with_host_and_sni_kept() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    dns = FakeDns()
    dns.answers["hooks.example"] = ["93.184.216.34", "2606:2800:220:1::1"]
    transport = guard.GuardedTransport(httpx.MockTransport(answer), dns)
    async with httpx.AsyncClient(transport=transport) as c:
        r = await c.post("https://hooks.example:8443/in?x=1", content=b"{}")
    assert r.status_code == 204 and dns.lookups == ["hooks.example"]  # resolved once, by us
    (sent,) = seen
    assert (sent.url.host, sent.url.port, sent.url.path, sent.url.query) == ("93.184.216.34", 8443, "/in", b"x=1")
    assert sent.headers["host"] == "hooks.example:8443"
    assert sent.extensions["sni_hostname"] == "hooks.example"  # TLS checks the name's certificate


@pytest.mark.parametrize(("host", "answers"), [
    ("rebind.example", ["127.0.0.1"]), ("mixed.example", ["93.184.216.34", "10.0.0.7"]),
    ("v6.example", ["::1"]), ("mapped.example", ["::ffff:127.0.0.1"]), ("metadata.example", ["169.254.169.254"]),
])
async def test_names_resolving_inside_are_refused_before_connecting(host: str, answers: list[str]) -> None:
    seen: list[httpx.Request] = []
    dns = FakeDns()
    dns.answers[host] = answers
    transport = guard.GuardedTransport(httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200)), dns)
    async with httpx.AsyncClient(transport=transport) as c:
        with pytest.raises(guard.BlockedDestination, match="block_private_addresses"):
            await c.post(f"http://{host}:9/hook", content=b"{}")
    assert seen == []


@pytest.mark.parametrize("host", ["127.1", "0x7f000001", "2130706433", "0177.0.0.1", "localhost", "[::1]", "0"])
async def test_literals_are_refused_without_asking_the_resolver(host: str) -> None:
    dns = FakeDns()
    with pytest.raises(guard.BlockedDestination, match="block_private_addresses"):
        await guard.checked_address(host, 9, dns)
    assert dns.lookups == []


# -- a gateway with the setting on ------------------------------------------------------------

@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns()
    monkeypatch.setattr(guard, "resolve", fake)
    return fake


@pytest.fixture
async def blocking(nursery: trio.Nursery, tmp_path: Path) -> Running:
    return await start_gateway(nursery, make_config(tmp_path, webhooks={"block_private_addresses": True}))


async def test_create_refuses_literals_and_names_that_resolve_inside(blocking: Running, dns: FakeDns) -> None:
    dns.answers["inside.example"] = ["10.1.2.3"]
    key = blocking.key("business")
    with trio.fail_after(10):
        async with blocking.client() as c:
            for url in ("http://127.1:9/", "http://2130706433:9/", "http://0x7f000001:9/", "http://0177.0.0.1:9/",
                        "http://[::ffff:127.0.0.1]:9/", "http://localhost.:9/", "http://inside.example/"):
                r = await c.post("/v1/webhooks", json={"url": url}, headers={"X-API-Key": key})
                assert (r.status_code, r.json()["error"], r.json()["param"]) == (400, "invalid_param", "url"), url
                assert "block_private_addresses" in r.json()["message"]
            hook = await create_hook(c, key, "http://unresolvable.example/")  # checked again at each send
            r = await c.patch(f"/v1/webhooks/{hook['id']}", json={"url": "http://127.1/"}, headers={"X-API-Key": key})
            assert r.status_code == 400 and r.json()["param"] == "url"


async def test_a_name_rebound_to_loopback_after_create_is_refused_at_send(blocking: Running, dns: FakeDns,
                                                                         receiver: Receiver) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    dns.answers["rebind.example"] = ["93.184.216.34"]  # public when the webhook is created
    key, ingest = blocking.key("business"), blocking.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with blocking.client() as c:
            hook = await create_hook(c, key, f"http://rebind.example:{port}/hook")
            dns.answers["rebind.example"] = ["127.0.0.1"]  # then it points at the receiver on loopback
            r = await c.post(f"/v1/webhooks/{hook['id']}/test", headers={"X-API-Key": key})
            test = r.json()
            await push(c, ingest, [quote(-110)])
            await push(c, ingest, [quote(-120)])
            rows = await until(lambda: deliveries(c, key, hook["id"]), lambda rows: any(
                r["event_type"] == "odds_drop" and r["status"] != "pending" for r in rows))
    assert receiver.requests == []  # nothing ever reached loopback
    assert test["delivered"] is False and test["status_code"] is None
    assert "resolves to 127.0.0.1" in test["error"]
    drop = next(row for row in rows if row["event_type"] == "odds_drop")
    assert drop["status"] == "failed" and "resolves to 127.0.0.1" in drop["last_error"]


async def test_off_by_default_test_reports_what_an_internal_host_answered(gateway: Running,
                                                                         receiver: Receiver) -> None:
    """The documented risk of the default: a key holder learns an internal URL's status."""
    key = gateway.key("business")
    receiver.default = 418
    with trio.fail_after(10):
        async with gateway.client() as c:
            hook = await create_hook(c, key, receiver.url.replace("127.0.0.1", "127.1"))
            r = await c.post(f"/v1/webhooks/{hook['id']}/test", headers={"X-API-Key": key})
    assert (r.json()["delivered"], r.json()["status_code"]) == (False, 418)


# -- the real process ---------------------------------------------------------------------------

def _loopback_name() -> str | None:
    """A name this machine resolves to loopback (its own host name usually is, /etc/hosts)."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except OSError:
        return None
    return name if infos and all(i[4][0].startswith("127.") or i[4][0] == "::1" for i in infos) else None


def start_serve(config: Path, db: Path, port: int) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--db", str(db), "--port", str(port),
           "--no-feeds"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def test_real_process_refuses_every_spelling_of_loopback(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(SHIPPED.read_text().replace("block_private_addresses = false", "block_private_addresses = true"))
    port = free_port()
    proc = start_serve(config, tmp_path / "g.db", port)
    try:
        with trio.fail_after(30):
            key = ""
            while not key:
                line = await trio.to_thread.run_sync(proc.stdout.readline)  # type: ignore[union-attr]
                assert line, proc.stderr.read()  # type: ignore[union-attr]
                if "demo key" in line:
                    key = line.split()[-1]
            urls = [f"http://{h}:{port}/x" for h in ("127.1", "2130706433", "0x7f000001", "0177.0.0.1", "[::1]",
                                                      "localhost", "0")]
            name = _loopback_name()
            if name is not None:
                urls.append(f"http://{name}:{port}/x")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
                answers: list[Any] = []
                for url in urls:
                    r = await c.post("/v1/webhooks", json={"url": url}, headers={"X-API-Key": key})
                    answers.append((url, r.status_code, r.json().get("param")))
    finally:
        proc.terminate()
        proc.wait(10)
    assert all(a[1:] == (400, "url") for a in answers), json.dumps(answers)
