"""deploy/gateway.service (systemd-analyze verify and security) and deploy/grafana-dashboard.json
(every metric its queries use is exported by a running gateway's /metrics)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from trio_websocket import open_websocket_url

from .conftest import Running
from .helpers import next_of, push, quote, sse_events
from .selfhost import DEPLOY

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get "
                                   "install systemd; .ci/selfhost-deps does it in CI)")
UNIT = DEPLOY / "gateway.service"


def _render_unit(tmp_path: Path, text: str | None = None) -> Path:
    """The shipped unit with ExecStart pointing at this environment's `gateway` (verify checks
    that the binary exists); nothing else changed."""
    gateway = Path(sys.executable).parent / "gateway"
    text = (text or UNIT.read_text()).replace("/opt/gateway/bin/gateway", str(gateway))
    path = tmp_path / "gateway.service"
    path.write_text(text)
    return path


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)


@needs_systemd
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    done = _verify(_render_unit(tmp_path))
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done
    # the check bites: a misspelt key and a bad value are reported (verify still exits 0 for them)
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict").replace(
        "Restart=on-failure", "Restart=sometimes")
    (tmp_path / "bad").mkdir()
    complaints = _verify(_render_unit(tmp_path / "bad", broken)).stderr
    assert "Unknown key 'ProtectSytem'" in complaints and "sometimes" in complaints, complaints


@needs_systemd
def test_unit_sandboxing_exposure_is_low(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager",
                           str(_render_unit(tmp_path))], capture_output=True, text=True, timeout=60)
    level = re.search(r"Overall exposure level for gateway\.service: ([\d.]+)", done.stdout)
    assert level is not None, done
    assert float(level.group(1)) <= 2.0, done.stdout[-2000:]  # "OK" starts below 2.0 on systemd's 0-10 scale


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_unit_has_what_a_service_needs() -> None:
    d = _directives(UNIT.read_text())
    assert d["User"] == ["gateway"] and d["StateDirectory"] == ["gateway"]
    assert d["Restart"] == ["on-failure"] and d["KillSignal"] == ["SIGTERM"]
    assert d["RestartPreventExitStatus"] == ["2"]  # start-up errors exit 2: restarting would loop
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes"), ("PrivateDevices", "yes")):
        assert d[key] == [value], key
    exec_start = d["ExecStart"][0].split()
    assert exec_start[1] == "serve" and exec_start[exec_start.index("--db") + 1].startswith("/var/lib/gateway/")


# ---------------------------------------------------------------------------------------- Grafana

DASHBOARD = DEPLOY / "grafana-dashboard.json"
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "le", "instance", "transport",
                "tier", "source", "sport_key", "without", "avg", "min"}


def _queries() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def _metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)  # label values
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w not in PROMQL_WORDS} - {"__rate_interval"}


def test_dashboard_is_a_grafana_dashboard_over_a_datasource_variable() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["schemaVersion"] >= 36 and doc["uid"] and doc["panels"]
    assert [v["name"] for v in doc["templating"]["list"]] == ["datasource", "instance"]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].count("(") == t["expr"].count(")") and 'instance=~"$instance"' in t["expr"], t
    used = set().union(*map(_metric_names, _queries()))
    for wanted in ("gateway_stream_connections", "gateway_stream_connections_by_tier",
                   "gateway_frames_delivered_total", "gateway_ingest_rows_total", "gateway_drops_total",
                   "gateway_writer_batch_seconds_bucket", "gateway_source_age_seconds",
                   "gateway_slow_consumer_cuts_total"):
        assert wanted in used, wanted


async def test_every_metric_the_dashboard_uses_is_exported(gateway: Running) -> None:
    """Scraped with a WebSocket and an SSE stream open and a drop made, so that every family
    the dashboard charts has samples (source age needs a source, connections a stream)."""
    key, ingest = gateway.key(), gateway.key(scopes=("ingest",))
    ws_url = gateway.url.replace("http", "ws") + f"/ws/odds/basketball_nba?apiKey={key}"
    with trio.fail_after(15):
        async with gateway.client() as c, open_websocket_url(ws_url) as ws:
            assert json.loads(await ws.get_message())["type"] == "connected"
            for price in (-110, -130):
                await push(c, ingest, [quote(price, event="grafana")])
            async with c.stream("GET", "/v1/odds-drop/all", params={"apiKey": key}) as resp:
                await next_of(sse_events(resp), "connected")
                families = list(text_string_to_metric_families((await c.get("/metrics")).text))
    exported = {s.name for family in families for s in family.samples}
    transports = {s.labels["transport"] for f in families if f.name == "gateway_stream_connections" for s in f.samples}
    assert transports == {"sse", "ws"}
    used = set().union(*map(_metric_names, _queries()))
    assert used and used - exported == set(), sorted(used - exported)
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"} <= exported
