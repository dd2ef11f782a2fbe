"""Where the data lives (issue 13, item 5): never inside the installed package."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.feeds.replay import DEMO_RECORDING
from gateway.resources import default_config_path

from .cli_processes import run_cli, serving


def test_serve_with_no_config_puts_the_database_in_the_working_directory(tmp_path: Path) -> None:
    """Before: the shipped config's `path = "gateway.db"` was relative to the shipped file,
    i.e. inside the installed package (or the source checkout's root)."""
    shipped_dir = default_config_path().parent
    beside_shipped = shipped_dir / "gateway.db"
    before = beside_shipped.stat().st_mtime_ns if beside_shipped.exists() else None
    with serving(["serve", "--port", "0"], cwd=tmp_path) as gw:
        assert gw.database == str(tmp_path / "gateway.db")  # absolute, in the banner
        assert "feeds: simulator" in gw.banner
        assert (tmp_path / "gateway.db").is_file()
    after = beside_shipped.stat().st_mtime_ns if beside_shipped.exists() else None
    assert after == before, f"the gateway wrote {beside_shipped}"


def test_relative_paths_in_a_config_file_are_relative_to_it(tmp_path: Path) -> None:
    conf, work = tmp_path / "etc", tmp_path / "work"
    conf.mkdir()
    work.mkdir()
    (conf / "rec.jsonl").write_text(DEMO_RECORDING.read_text())
    feeds = '[[feeds]]\ntype = "replay"\npath = "rec.jsonl"\n'
    (conf / "config.toml").write_text(feeds)  # no [database] path: the working directory

    def effective(*extra: str) -> dict[str, object]:
        done = run_cli(["check-config", "--config", str(conf / "config.toml"), *extra], cwd=work)
        assert done.returncode == 0, done.stderr
        out: dict[str, object] = json.loads(done.stdout)
        return out

    assert effective()["database_file"] == str(work / "gateway.db")
    # --db is relative to the working directory, and leaves the feed's path relative to the
    # config file (before, --db moved every relative path of the config to the working directory)
    assert effective("--db", "mine.db")["database_file"] == str(work / "mine.db")
    (conf / "config.toml").write_text('[database]\npath = "data/gw.db"\n\n' + feeds)
    (conf / "data").mkdir()
    assert effective()["database_file"] == str(conf / "data" / "gw.db")
