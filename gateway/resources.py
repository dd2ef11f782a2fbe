"""Files shipped with the gateway: schema.sql, the default config and demo data.

In a source checkout they sit at the repository root; in a wheel they are packaged
inside `gateway/` (see pyproject's force-include), so look in both places.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def find(name: str, packaged_as: str | None = None) -> Path:
    for candidate in (_PACKAGE / (packaged_as or name), _PACKAGE.parent / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{name} is missing from the gateway installation")


def schema_text() -> str:
    return find("schema.sql").read_text()


def default_config_path() -> Path:
    return find("config.toml", "default_config.toml")


def demo_recording_path() -> Path:
    return _PACKAGE / "data" / "demo_recording.jsonl"
