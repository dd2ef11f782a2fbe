"""Start-up errors a person can read (issue 13, item 4): one line on stderr naming the thing
and what to do, exit status 2, no traceback unless -v. Real processes, as they happen."""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import startup
from gateway.auth import lookup_key
from gateway.cli import main
from gateway.config import Config
from gateway.feeds.replay import DEMO_RECORDING
from gateway.startup import StartupError, listen_error
from gateway.store import Store

from .cli_processes import read_only, run_cli, serving


def one_line(args: list[str], cwd: Path, *, prefix: list[str] | None = None) -> str:
    """Run `gateway ARGS`, expect exit 2 and exactly one line on stderr; return it."""
    done = run_cli(args, cwd=cwd, prefix=prefix or [])
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("gateway: "), lines[0]
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_port_in_use_leaves_the_demo_key_alone(tmp_path: Path, busy_port: int) -> None:
    db = tmp_path / "g.db"
    with serving(["serve", "--db", str(db), "--port", "0", "--no-feeds"], cwd=tmp_path) as first:
        demo = first.demo_key
    line = one_line(["serve", "--db", str(db), "--port", str(busy_port), "--no-feeds"], tmp_path)
    assert line == (f"gateway: port {busy_port} on 127.0.0.1 is in use: stop what listens there, or pass another "
                    "--port ([server] port)")
    with sqlite3.connect(db) as conn:  # rotated only once the port is bound: the failed start kept it
        found = lookup_key(conn, demo)
        assert found is not None and found.name == "demo"


def test_a_host_that_is_not_ours(tmp_path: Path) -> None:
    line = one_line(["serve", "--db", str(tmp_path / "g.db"), "--host", "192.0.2.1", "--port", "0", "--no-feeds"],
                    tmp_path)
    assert "cannot listen on 192.0.2.1: not an address of this machine: check --host" in line


def test_a_missing_database_directory_is_not_created(tmp_path: Path) -> None:
    line = one_line(["serve", "--db", str(tmp_path / "nope" / "g.db"), "--port", "0"], tmp_path)
    assert line == (f"gateway: database directory {tmp_path / 'nope'} does not exist (for g.db): create it, "
                    "or pass another --db")
    assert not (tmp_path / "nope").exists()


def test_a_read_only_database_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    line = one_line(["serve", "--db", str(ro / "g.db"), "--port", "0"], tmp_path, prefix=read_only(ro))
    assert line.startswith(f"gateway: database directory {ro} is read-only: ")
    assert "make it writable, or pass another --db" in line


def test_an_unwritable_database_file(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    Store(str(db), readers=1).close()
    line = one_line(["serve", "--db", str(db), "--port", "0"], tmp_path, prefix=read_only(db))
    assert line.startswith(f"gateway: database file {db} is not writable: fix its permissions")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "g.db").write_text("hello, I am a text file, not SQLite" * 100)
    line = one_line(["serve", "--db", str(tmp_path / "g.db"), "--port", "0"], tmp_path)
    assert "g.db" in line and "not a database" in line


def test_replay_files_missing_or_malformed(tmp_path: Path) -> None:
    line = one_line(["replay", str(tmp_path / "none.jsonl"), "--db", str(tmp_path / "g.db"), "--port", "0"], tmp_path)
    assert line.startswith(f"gateway: replay file {tmp_path / 'none.jsonl'} does not exist: check the path")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(DEMO_RECORDING.read_text().splitlines()[0] + "\n{not json\n")
    line = one_line(["replay", str(bad), "--db", str(tmp_path / "g.db"), "--port", "0"], tmp_path)
    assert line.startswith(f"gateway: replay file {bad}: line 2: invalid JSON")
    # a configured replay feed fails the start too, instead of retrying for ever; its path is
    # relative to the config file
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.toml").write_text('[[feeds]]\ntype = "replay"\npath = "rec.jsonl"\n')
    line = one_line(["serve", "--config", "conf/config.toml", "--db", "g.db", "--port", "0"], tmp_path)
    assert line.startswith(f"gateway: replay file {tmp_path / 'conf' / 'rec.jsonl'} does not exist")


def test_config_problems(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[server\nport = 1\n")
    assert one_line(["serve"], tmp_path).startswith(f"gateway: {cfg}: invalid TOML: ")  # ./config.toml
    assert one_line(["serve", "--config", str(cfg)], tmp_path).startswith(f"gateway: {cfg}: invalid TOML: ")
    cfg.write_text("[server]\nprot = 8080\n")
    assert one_line(["serve", "--config", str(cfg)], tmp_path) == "gateway: [server] unknown key(s): prot"
    assert one_line(["serve", "--config", str(tmp_path / "nope.toml")], tmp_path) == (
        f"gateway: config file not found: {tmp_path / 'nope.toml'}: check --config")


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    done = run_cli(["serve", "-v", "--db", str(tmp_path / "nope" / "g.db"), "--port", "0"], cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" in done.stderr and "StartupError" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("gateway: database directory")


def test_tls_and_future_checks_are_one_line_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    err = ssl.SSLError(ssl.SSL_ERROR_SSL, "PEM lib")
    err.reason = "PEM_LIB"
    assert str(listen_error(err, "127.0.0.1", 8443)).startswith("TLS: PEM_LIB: check the certificate and key")
    missing = FileNotFoundError(2, "No such file or directory", "/etc/gw/cert.pem")
    assert str(listen_error(missing, "127.0.0.1", 8443)) == (
        "cannot read /etc/gw/cert.pem: No such file or directory: check the path in [server]")

    def tls_check(config: Config) -> None:  # what a [server] tls_cert check adds to CHECKS
        raise StartupError("[server] tls_cert: /etc/gw/cert.pem does not exist")

    monkeypatch.setattr(startup, "CHECKS", [*startup.CHECKS, tls_check])
    assert main(["serve", "--db", str(tmp_path / "g.db"), "--port", "0"]) == 2
    assert capsys.readouterr().err == "gateway: [server] tls_cert: /etc/gw/cert.pem does not exist\n"
    assert not (tmp_path / "g.db").exists()  # checked before anything was written


def test_check_config_names_its_file_checks_feeds_and_redacts_secrets(tmp_path: Path) -> None:
    (tmp_path / "rec.jsonl").write_text(DEMO_RECORDING.read_text())
    cfg = tmp_path / "config.toml"
    cfg.write_text('[server]\nsession_secret = "hunter2-session"\n\n'
                   '[[feeds]]\ntype = "the_odds_api"\napi_key = "sk-odds-123"\nbase_url = "http://x"\n\n'
                   '[[feeds]]\ntype = "replay"\npath = "rec.jsonl"\n')
    done = run_cli(["check-config", "--config", str(cfg)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout and "sk-odds" not in done.stdout
    out = json.loads(done.stdout)
    assert out["config_file"] == str(cfg)
    assert out["server"]["session_secret"] == "***" and out["feeds"][0]["api_key"] == "***"
    assert out["database_file"] == str(tmp_path / "gateway.db")
    assert done.stderr == f"gateway: configuration OK ({cfg})\n"
    (tmp_path / "rec.jsonl").unlink()
    line = one_line(["check-config", "--config", str(cfg)], tmp_path)
    assert line.startswith(f"gateway: replay file {tmp_path / 'rec.jsonl'} does not exist")


def test_key_commands_on_a_database_that_is_not_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`keys list` used to create an empty database at a mistyped path and list nothing."""
    missing = tmp_path / "typo.db"
    assert main(["keys", "list", "--db", str(missing)]) == 2
    assert capsys.readouterr().err == (f"gateway: no database at {missing}: check --db or [database] path "
                                       "(a gateway creates it when it first starts)\n")
    assert main(["keys", "revoke", "bot1", "--db", str(missing)]) == 2
    assert not missing.exists()
    assert main(["keys", "create", "--tier", "pro", "--name", "x", "--db", str(tmp_path / "nope" / "k.db")]) == 2
    assert "database directory" in capsys.readouterr().err and not (tmp_path / "nope").exists()
