"""[cluster] and `--role`: validated like every table (check-config, one line, exit 2), and
without [cluster] nothing changes: a gateway never imports the Redis client."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, config_from_dict, redacted_url
from tests.cli_processes import _env, run_cli
from tests.cluster_procs import RedisServer, needs_redis, start_node
from tests.processes import write_config
from tests.test_startup_errors import one_line


@pytest.mark.parametrize(("table", "message"), [
    ({}, "[cluster] redis_url is required (e.g. redis://127.0.0.1:6379/0)"),
    ({"redis_url": "http://h:6379"}, "[cluster] redis_url: 'http://h:6379' is not a Redis URL"),
    ({"redis_url": "redis://"}, "[cluster] redis_url: a host is missing"),
    ({"redis_url": "redis://h:99999"}, "[cluster] redis_url: the port is not a number between 0 and 65535"),
    ({"redis_url": "redis://h", "role": "reader"}, "[cluster] role: 'reader' is not writer or edge"),
    ({"redis_url": "redis://h", "lease_s": 0.5}, "[cluster] lease_s must be between 1 and 300"),
    ({"redis_url": "redis://h", "edge_id": "edge one"}, "[cluster] edge_id: 1-64 characters"),
    ({"redis_url": "redis://h", "writer_url": "ftp://w"}, "[cluster] writer_url: an http:// or https:// URL"),
    ({"redis_url": "redis://h", "replicas": 2}, "[cluster] unknown key(s): replicas"),
    ({"redis_url": "redis://h", "lease_s": "10"}, "[cluster] lease_s: expected float, got '10'"),
])
def test_bad_cluster_tables(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"cluster": table})
    assert str(err.value).startswith(message), str(err.value)


def test_good_cluster_tables() -> None:
    assert config_from_dict({}).cluster is None
    c = config_from_dict({"cluster": {"redis_url": "rediss://:pw@redis.internal:6380/2", "role": "edge",
                                      "edge_id": "edge-1.eu", "lease_s": 5, "writer_url": "https://odds.example.com"}})
    assert c.cluster is not None and (c.cluster.role, c.cluster.lease_s) == ("edge", 5.0)
    assert config_from_dict({"cluster": {"redis_url": "unix:///run/redis.sock"}}).cluster is not None


def test_passwords_never_show() -> None:
    assert redacted_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redacted_url("rediss://user:s3cret@h/1") == "rediss://user:***@h/1"
    assert redacted_url("redis://h:6379") == "redis://h:6379"


def test_check_config_shows_the_cluster_table_without_its_password(tmp_path: Path) -> None:
    config = write_config(tmp_path, cluster={"redis_url": "redis://:s3cret@127.0.0.1:6379/0", "role": "edge"})
    done = run_cli(["check-config", "--config", str(config)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["cluster"]
    assert shown == {"redis_url": "redis://:***@127.0.0.1:6379/0", "role": "edge", "edge_id": "", "lease_s": 10.0,
                     "writer_url": ""}
    assert "s3cret" not in done.stdout + done.stderr


def test_check_config_refuses_a_bad_cluster_table(tmp_path: Path) -> None:
    config = write_config(tmp_path, cluster={"redis_url": "redis://h", "lease_s": 0})
    line = one_line(["check-config", "--config", str(config)], tmp_path)
    assert line == "gateway: [cluster] lease_s must be between 1 and 300 (seconds)"


def test_role_needs_a_cluster_table_and_a_cluster_needs_a_role(tmp_path: Path) -> None:
    plain = write_config(tmp_path)
    line = one_line(["serve", "--config", str(plain), "--port", "0", "--role", "edge"], tmp_path)
    assert line == "gateway: --role edge needs a [cluster] table with redis_url in the config (README, Cluster)"
    (tmp_path / "c").mkdir()
    clustered = write_config(tmp_path / "c", cluster={"redis_url": "redis://127.0.0.1:1/0"})
    line = one_line(["serve", "--config", str(clustered), "--port", "0"], tmp_path)
    assert line == ('gateway: [cluster] needs a role for this process: pass --role writer or --role edge (or set '
                    'role = "writer" / "edge" in [cluster])')


NO_REDIS = """
import sys, httpx
from gateway import cli, app, testing  # everything `gateway serve` imports
with testing.run_gateway() as gw:
    assert httpx.get(gw.base_url + "/readyz").status_code == 200
    gw.move("e1", "pinnacle", "h2h", "home", -110, -125)
assert "redis" not in sys.modules, "a gateway without [cluster] imported redis"
assert not any(m.startswith("gateway.cluster") for m in sys.modules), "gateway.cluster was imported"
print("ok")
"""


def test_without_a_cluster_table_redis_is_never_imported(tmp_path: Path) -> None:
    pytest.importorskip("redis", reason="the redis client is in the test extra: pip install -e '.[test]'")
    done = subprocess.run([sys.executable, "-c", NO_REDIS], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env=_env())
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@needs_redis
def test_redis_that_refuses_the_password_is_one_line(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis", aof=False)
    redis.start()
    try:
        redis.command("CONFIG", "SET", "requirepass", "right")
        config = write_config(tmp_path, cluster={"redis_url": f"redis://:wrong@127.0.0.1:{redis.port}/0"})
        for role in ("writer", "edge"):
            line = one_line(["serve", "--config", str(config), "--db", str(tmp_path / "w.db"), "--port", "0",
                             "--role", role], tmp_path)
            assert line.startswith(f"gateway: Redis at redis://:***@127.0.0.1:{redis.port}/0 refused"), line
            assert "wrong" not in line
    finally:
        redis.stop()


@needs_redis
def test_a_second_writer_refuses_to_start_and_an_edge_waits_for_redis(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    config = write_config(tmp_path, cluster={"redis_url": redis.url, "lease_s": 1})
    log = tmp_path / "edge.log"
    with open(log, "wb") as out:  # an edge started before Redis: it waits (not listening), saying so
        edge = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config), "--port", "0",
                                 "--role", "edge"], stdout=subprocess.PIPE, stderr=out, cwd=tmp_path, env=_env())
    try:
        deadline = time.monotonic() + 20
        while "waiting for Redis at" not in log.read_text():
            assert edge.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        redis.start()
        writer = start_node(tmp_path, config, "writer", name="writer", db=tmp_path / "w.db")
        try:
            line = one_line(["serve", "--config", str(config), "--db", str(tmp_path / "other.db"), "--port", "0",
                             "--role", "writer"], tmp_path)
            assert line.startswith(f"gateway: another writer feeds Redis at {redis.url} (pid {writer.proc.pid} "), line
            from tests.processes import _banner_url

            url = _banner_url(edge, log)  # the edge came up once Redis and the writer were there
            assert url.startswith("http://127.0.0.1:")
        finally:
            writer.stop()
    finally:
        edge.terminate()
        edge.wait(10)
        if edge.stdout is not None:
            edge.stdout.close()
        redis.stop()



def test_a_cluster_without_the_redis_client_is_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, cluster={"redis_url": "redis://127.0.0.1:1/0"})
    code = ("import sys; sys.modules['redis'] = None  # as if it were not installed\n"
            "from gateway.cli import main; raise SystemExit(main(sys.argv[1:]))")
    for role in ("writer", "edge"):
        done = subprocess.run([sys.executable, "-c", code, "serve", "--config", str(config), "--db",
                               str(tmp_path / "w.db"), "--port", "0", "--role", role], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, env=_env())
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == ("gateway: [cluster] needs the redis client: pip install 'gateway[cluster]' "
                                       "(or pip install redis)"), done.stderr
