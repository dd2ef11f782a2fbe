"""One owner per database: an exclusive advisory lock on a sidecar `<db>.lock` file.

A process that writes to a database as a gateway (`gateway serve`, `gateway replay`,
`gateway.testing`: everything that runs `app.serve`) takes the lock before it writes
anything, and holds it until it has closed the database. A second one fails to take it and
refuses to start, naming the owner. The lock is `flock(2)`: the kernel drops it when the
owner's process ends, however it ends (`kill -9` included), so it is never stale; it is per
open file, so two gateways in one process exclude each other too. The file's content, JSON
`{pid, address, started, db}`, only says who holds it: for the refusal message and for
`gateway record`, which finds the owner's address there. Short writes from the CLI (`keys
create`/`revoke`, webhooks) do not take the lock: each is one SQLite transaction, serialised
with the owner's writer by SQLite's own lock and busy timeout.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from .startup import StartupError

LOCK_SUFFIX = ".lock"


def lock_path(db: str) -> Path:
    """`<db>.lock` beside the database, for the file's real path (a symlink gets the same lock)."""
    return Path(os.path.realpath(db) + LOCK_SUFFIX)


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    address: str | None = None  # the base URL, once the owner listens
    started: str | None = None  # ISO 8601, UTC

    def describe(self) -> str:
        """`pid 4242 (http://127.0.0.1:8080), started 2026-12-03 09:12 UTC`"""
        text = f"pid {self.pid}"
        if self.address:
            text += f" ({self.address})"
        if self.started:
            try:
                when = datetime.fromisoformat(self.started).astimezone(UTC)
                text += f", started {when:%Y-%m-%d %H:%M} UTC"
            except ValueError:
                pass
        return text


def parse_owner(text: str) -> Owner | None:
    try:
        data = json.loads(text)
        pid = data["pid"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(pid, int) or isinstance(pid, bool):
        return None
    address, started = data.get("address"), data.get("started")
    return Owner(pid, address if isinstance(address, str) else None, started if isinstance(started, str) else None)


def read_owner(db: str) -> Owner | None:
    """What the lock file says, if anything. It does not prove the owner still runs: the file
    outlives a process killed with -9 (`pid_running` tells)."""
    try:
        return parse_owner(lock_path(db).read_text())
    except OSError:
        return None


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class DatabaseOwned(StartupError):
    def __init__(self, db: str, owner: Owner | None) -> None:
        self.owner = owner
        who = owner.describe() if owner is not None else "another process"
        super().__init__(f"{db} is owned by {who}; stop it or use another --db")


class Ownership:
    """`with Ownership(db) as own: ...; own.announce(url)`: the lock, held for the block."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.path = None if db == ":memory:" else lock_path(db)
        self._fd: int | None = None
        self._started = datetime.now(UTC).isoformat(timespec="seconds")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise DatabaseOwned (StartupError for a directory we cannot use)."""
        if self.path is None or self._fd is not None:
            return  # an in-memory database belongs to its connection anyway
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StartupError(f"cannot create the lock file {self.path}: {exc.strerror}; the database's "
                               "directory must be writable (or pass another --db)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner_of(fd)
            os.close(fd)
            raise DatabaseOwned(self.db, owner) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._write(None)

    def announce(self, address: str) -> None:
        """Add the address the owner listens on, once it is bound."""
        self._write(address)

    def release(self) -> None:
        """Empty the file and let go (the file stays: removing it would race with a newcomer
        that opened it already and would lock a file nobody else can see)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing the last descriptor of the open file releases the lock

    def _write(self, address: str | None) -> None:
        if self._fd is None:
            return
        data = json.dumps({"pid": os.getpid(), "address": address, "started": self._started,
                           "db": os.path.realpath(self.db)}).encode()
        # new content first, then cut what is left of the old: a reader sees old, new, or a
        # mix that is not JSON (and reads again), never an empty file while we hold the lock
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def __enter__(self) -> Ownership:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _owner_of(fd: int, attempts: int = 10, pause_s: float = 0.05) -> Owner | None:
    """The holder's JSON; it may be mid-write (or not written yet, just after it locked)."""
    for _ in range(attempts):
        owner = parse_owner(os.pread(fd, 4096, 0).decode(errors="replace"))
        if owner is not None:
            return owner
        time.sleep(pause_s)
    return None
