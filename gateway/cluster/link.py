"""The Redis side of the cluster: connections, key names, the Lua scripts, one-line errors.

The synchronous `redis` client, called from Trio through `trio.to_thread` (one thread per
call; the follower's blocking XREAD holds its own connection). The client's own retries are
off: a lost connection surfaces, and every writer publish and every edge read checks
Redis's epoch and head, so a Redis that restarted (or lost data) is noticed even when a
fresh connection hides the restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from ..startup import StartupError

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover - the check below says what to install
    redis = None  # type: ignore[assignment]

T = TypeVar("T")
logger = logging.getLogger("gateway.cluster")

P = "gw:"  # every key of the cluster starts with this (one cluster per Redis database)
LOG = P + "log"  # the stream: one entry per frame, id <seq>-0
NAMES = P + "names"  # code -> name of the compact log (the store's log_names)
META = P + "meta"  # epoch, head, floor, writer_url, session_secret
QUOTES, EVENTS, LIVE = P + "quotes", P + "events", P + "live"  # the board: the store's tables
SPORTS, BOOKS, MARKETS = P + "sports", P + "books", P + "markets"  # the catalog the writer grew
STATE = P + "state"  # source freshness (JSON), refreshed every second
KEYS, KEYLOG = P + "keys", P + "keylog"  # API keys by hash; a stream of their changes
WRITER = P + "writer"  # the writer's lock (one writer per cluster)
BOARD_KEYS = (QUOTES, EVENTS, LIVE, SPORTS, BOOKS, MARKETS)
DATA_KEYS = (LOG, NAMES, META, *BOARD_KEYS, STATE, KEYS, KEYLOG)


def caps_key(key_id: int) -> str:
    return f"{P}caps:{key_id}"


def lease_key(holder: str) -> str:
    return f"{P}lease:{holder}"


def need_client() -> None:
    if redis is None:
        raise StartupError("[cluster] needs the redis client: pip install 'gateway[cluster]' (or pip install redis)")


def client(url: str, *, timeout_s: float = 5.0) -> Any:
    """A client without retries (see the module's docstring); bytes in and out."""
    need_client()
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=min(timeout_s, 3.0),
                                retry=Retry(NoBackoff(), 0), health_check_interval=0, decode_responses=False)


def auth_errors() -> tuple[type[BaseException], ...]:
    """What a Redis that refuses this client raises (a password, an ACL): retrying cannot help."""
    return (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError) if redis else ()


def errors() -> tuple[type[BaseException], ...]:
    """What a lost or refusing Redis raises (OSError: a socket error the client let through)."""
    return (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError) if redis else (OSError,)


async def call(fn: Callable[[], T]) -> T:
    """Run a Redis call in a worker thread; a cancelled caller abandons it (it ends by its timeout)."""
    return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)


# -- scripts ---------------------------------------------------------------------------------------

# The writer's publish: entries, names, board rows and the new head, only if Redis is where
# the writer left it (same epoch and head). A Redis that restarted and lost its tail, or
# that another process changed, answers {head, epoch} instead and nothing is written.
# KEYS: log meta names quotes events live sports books markets
# ARGV: expected head, expected epoch, new head, then sections "count, items..." in order:
#   entries (id, value), names, quotes, events, live, sports, books (field, value), markets (member)
PUBLISH = """
local meta = redis.call('HMGET', KEYS[2], 'head', 'epoch')
if meta[1] ~= ARGV[1] or meta[2] ~= ARGV[2] then
  return {meta[1] or '', meta[2] or ''}
end
local i = 4
local n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  redis.call('XADD', KEYS[1], ARGV[i], 'f', ARGV[i + 1])
  i = i + 2
end
for k = 3, 8 do
  n = tonumber(ARGV[i]); i = i + 1
  local j = 0
  while j < n do
    local m = math.min(n - j, 500)
    local args = {}
    for x = 1, 2 * m do args[x] = ARGV[i + x - 1] end
    redis.call('HSET', KEYS[k], unpack(args))
    i = i + 2 * m
    j = j + m
  end
end
n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  redis.call('SADD', KEYS[9], ARGV[i])
  i = i + 1
end
redis.call('HSET', KEYS[2], 'head', ARGV[3])
return 1
"""

# An edge takes a connection slot of a key if every live edge's count (its lease exists)
# plus its own new count stays within the limit; counts of edges whose lease expired are
# dropped on the way (a dead edge's slots).
# KEYS: caps hash of the key. ARGV: this edge (its field and lease name), new count, limit,
# lease key prefix, the hash's TTL in ms. Returns 1 (taken) or 0 (at the cap).
ACQUIRE = """
local all = redis.call('HGETALL', KEYS[1])
local others = 0
for i = 1, #all, 2 do
  local who = all[i]
  if who ~= ARGV[1] then
    if redis.call('EXISTS', ARGV[4] .. who) == 1 then
      others = others + tonumber(all[i + 1])
    else
      redis.call('HDEL', KEYS[1], who)
    end
  end
end
if others + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""

# Take or renew the writer's lock if it is free or ours. KEYS: lock. ARGV: value, ttl ms.
# Returns the holder's value when another process holds it.
LOCK = """
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
