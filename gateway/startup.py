"""Start-up checks: every problem that stops the gateway from starting is one line.

A `StartupError`'s message names the thing (a file, a directory, a port) and what to do;
the CLI prints it as `gateway: MESSAGE` and exits 2, with the traceback only under `-v`.
The checks here read and never write, so they run before the database is owned or opened.
`CHECKS` is the hook for checks of new settings (TLS files, say): a function of the config
that raises `StartupError`.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from .config import Config


class StartupError(Exception):
    """The gateway cannot start; the message is one line naming the thing and what to do."""


def find_exception(exc: BaseException, kinds: tuple[type[BaseException], ...] = (StartupError,)
                   ) -> BaseException | None:
    """`exc` or the first of `kinds` inside it (Trio nurseries wrap errors in groups)."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_exception(inner, kinds)
            if found is not None:
                return found
    return None


# -- the database's location ----------------------------------------------------------------

def check_database_location(db: str) -> None:
    """The database's directory exists and is writable (SQLite puts its -wal and -shm files
    and we put the lock file there), and the file, if it exists, is a writable file."""
    if db == ":memory:":
        return
    path = Path(db)
    where = path.parent
    if not where.is_dir():
        what = "is not a directory" if where.exists() else "does not exist"
        raise StartupError(f"database directory {where} {what} (for {path.name}): create it, or pass another --db")
    if not os.access(where, os.W_OK | os.X_OK):
        raise StartupError(f"database directory {where} is read-only: the gateway writes {path.name} and its "
                           f"-wal, -shm and .lock files there; make it writable, or pass another --db")
    if path.is_dir():
        raise StartupError(f"database path {path} is a directory: pass a file path with --db")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StartupError(f"database file {path} is not writable: fix its permissions (chmod u+rw) "
                           f"or its owner, or pass another --db")


def check_database_exists(db: str) -> None:
    """For commands that only read or change what is there (`keys list`, `keys revoke`)."""
    if db != ":memory:" and not Path(db).is_file():
        raise StartupError(f"no database at {db}: check --db or [database] path "
                           "(a gateway creates it when it first starts)")


# -- feeds ----------------------------------------------------------------------------------

def check_feed_files(config: Config) -> None:
    """Every replay feed's recording exists and reads as a recording, to its last line: a bad
    file fails the start instead of a feed that restarts with backoff for ever."""
    from .feeds.replay import RecordingError, read_recording

    for feed in config.feeds:
        if feed.type != "replay":
            continue
        path = feed_path(config, feed.path)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise StartupError(f"replay file {path} {what}: check the path (in a config file, a feed's path "
                               "is relative to that file)")
        try:
            for _ in read_recording(path):
                pass
        except RecordingError as exc:
            raise StartupError(f"replay file {exc}: fix the file or record it again") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(f"replay file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None


def feed_path(config: Config, path: str) -> Path:
    """A feed's file: relative paths are relative to the config file (feeds/runner.py too)."""
    p = Path(path)
    return p if p.is_absolute() else config.base_dir / p


# Checks of the configuration that need the file system; each raises StartupError.
# Another setting with files (e.g. [server] tls_cert / tls_key) adds its check here.
CHECKS: list[Callable[[Config], None]] = [check_feed_files]


def preflight(config: Config, *, feeds: bool = True) -> None:
    """Everything that can be checked before the database is touched."""
    for check in CHECKS:
        if check is check_feed_files and not feeds:
            continue
        check(config)
    check_database_location(config.db_path())


# -- listening ------------------------------------------------------------------------------

def listen_error(exc: OSError, host: str, port: int) -> StartupError:
    """A bind (or TLS set-up) failure as one line."""
    where = f"{host}:{port}"
    if isinstance(exc, ssl.SSLError):
        return StartupError(f"TLS: {exc.reason or exc}: check the certificate and key files in [server]")
    if exc.errno == errno.EADDRINUSE:
        return StartupError(f"port {port} on {host} is in use: stop what listens there, or pass another "
                            "--port ([server] port)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StartupError(f"not allowed to listen on {where} (ports below 1024 need privileges): "
                            "pass --port 1024 or above")
    if isinstance(exc, socket.gaierror):
        return StartupError(f"cannot listen on {host}: the name does not resolve ({exc.strerror}): check --host "
                            "([server] host), e.g. 127.0.0.1 or 0.0.0.0")
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return StartupError(f"cannot listen on {host}: not an address of this machine: check --host "
                            "([server] host), e.g. 127.0.0.1 or 0.0.0.0")
    if exc.filename:  # a file the server needs (a TLS certificate, say)
        return StartupError(f"cannot read {exc.filename}: {exc.strerror or exc}: check the path in [server]")
    return StartupError(f"cannot listen on {where}: {exc.strerror or exc}")
