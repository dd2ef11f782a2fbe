"""One tenant's dead webhooks delay only that tenant (issue 14.6): real receivers on 127.0.0.1,
one that hangs and one that answers at once, and a real gateway sending to both."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from gateway.config import ConfigError, config_from_dict
from gateway.webhooks import worker

from .conftest import Running, make_config, start_gateway
from .helpers import push, quote
from .test_webhooks_delivery import Receiver, create_hook, start_receiver

NOISY_HOOKS = 5
SHARE = 2  # [webhooks] per_key_concurrency in these tests (concurrency 4)


@pytest.fixture(autouse=True)
def hanging_is_slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(worker, "TIMEOUT_S", 20.0)  # a hanging receiver holds its slot for the whole test
    monkeypatch.setattr(worker, "MIN_PASS_INTERVAL_S", 0.01)
    monkeypatch.setattr(worker, "TEST_WAIT_S", 0.3)
    yield


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Receiver:
    r = await start_receiver(nursery, "")
    for i in range(NOISY_HOOKS):
        r.slow[f"/hang{i}"] = 60.0
    return r


@pytest.fixture
async def fair_gateway(nursery: trio.Nursery, tmp_path: Path) -> Running:
    config = make_config(tmp_path, webhooks={"concurrency": 4, "per_key_concurrency": SHARE})
    return await start_gateway(nursery, config)


def hanging_now(receiver: Receiver) -> int:
    return sum(n for path, n in receiver.active.items() if path.startswith("/hang"))


async def quiet_latencies(c: httpx.AsyncClient, ingest: str, receiver: Receiver, drops: int,
                          start_price: int) -> list[float]:
    """Push `drops` drops one by one; how long each took to reach the healthy receiver."""
    out = []
    price = start_price
    for n in range(drops):
        price = -120 if price == -110 else -110
        sent = trio.current_time()
        await push(c, ingest, [quote(price)])
        got = await receiver.wait_for(n + 1, "/ok")
        out.append(got[-1].at - sent)
    return out


async def test_dead_endpoints_of_one_key_do_not_delay_another(fair_gateway: Running, receiver: Receiver) -> None:
    noisy, quiet = fair_gateway.key("business", name="noisy"), fair_gateway.key("business", name="quiet")
    ingest = fair_gateway.key(scopes=("ingest",))
    with trio.fail_after(15):
        async with fair_gateway.client() as c:
            for i in range(NOISY_HOOKS):
                await create_hook(c, noisy, f"{receiver.url}/hang{i}")
            await create_hook(c, quiet, f"{receiver.url}/ok")
            await push(c, ingest, [quote(-110)])
            latencies = await quiet_latencies(c, ingest, receiver, 8, -110)
            noisy_started = len([r for r in receiver.requests if r.path.startswith("/hang")])
            hanging = hanging_now(receiver)
    # the noisy key had 8 drops x 5 webhooks due and got its share of the pool, no more;
    # before the per-key share, its 20+ attempts filled the pool and the quiet key waited
    # for their 20 s timeouts
    assert 1 <= hanging <= SHARE and noisy_started <= SHARE
    assert max(latencies) < 1.0, latencies


async def test_a_flood_of_tests_to_a_hanging_url_delays_only_its_key(fair_gateway: Running,
                                                                     receiver: Receiver) -> None:
    noisy, quiet = fair_gateway.key("business", name="noisy"), fair_gateway.key("business", name="quiet")
    ingest = fair_gateway.key(scopes=("ingest",))
    answers: list[httpx.Response] = []
    refused_all = trio.Event()
    with trio.fail_after(15):
        async with fair_gateway.client() as c:
            hook = await create_hook(c, noisy, f"{receiver.url}/hang0")
            await create_hook(c, quiet, f"{receiver.url}/ok")

            async def test_call() -> None:
                answers.append(await c.post(f"/v1/webhooks/{hook['id']}/test", headers={"X-API-Key": noisy}))
                if len(answers) == 12 - SHARE:  # the others are refused once TEST_WAIT_S passed
                    refused_all.set()

            async with trio.open_nursery() as tests:
                for _ in range(12):
                    tests.start_soon(test_call)
                await receiver.wait_for(SHARE, "/hang0")
                await push(c, ingest, [quote(-110)])
                latencies = await quiet_latencies(c, ingest, receiver, 5, -110)
                hanging = hanging_now(receiver)
                await refused_all.wait()
                tests.cancel_scope.cancel()  # the SHARE tests in flight hang until their timeout
    assert 1 <= hanging <= SHARE, "a /test holds a slot of its key's share"
    assert max(latencies) < 1.0, latencies
    refused = [r.json() for r in answers]
    assert all((r["error"], r["limit"]) == ("rate_limit", SHARE) for r in refused), refused
    assert "per_key_concurrency" in refused[0]["message"]


@pytest.mark.parametrize(("table", "words"), [
    ({"per_key_concurrency": 0}, "per_key_concurrency must be between 1 and concurrency (20)"),
    ({"concurrency": 4, "per_key_concurrency": 5}, "per_key_concurrency must be between 1 and concurrency (4)"),
    ({"concurrency": 0}, "concurrency must be between 1 and 1000"),
    ({"block_private_addresses": "yes"}, "block_private_addresses: expected bool"),
    ({"block_privat_addresses": True}, "unknown key(s): block_privat_addresses"),
])
def test_the_webhooks_table_is_validated(table: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({"webhooks": table})
    assert words in str(info.value) and "[webhooks]" in str(info.value)


def test_check_config_names_a_bad_webhooks_key(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[webhooks]\nper_key_concurrency = 50\n")
    out = subprocess.run([sys.executable, "-m", "gateway", "check-config", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == "gateway: [webhooks] per_key_concurrency must be between 1 and concurrency (20)"
    good = subprocess.run([sys.executable, "-m", "gateway", "check-config", "--config",
                           str(Path(__file__).resolve().parent.parent / "config.toml")],
                          capture_output=True, text=True, timeout=30, check=True)
    assert '"block_private_addresses": false' in good.stdout and '"per_key_concurrency": 5' in good.stdout

