"""Beyond one machine: one writer and any number of edges fed through Redis Streams.

Imported only when config.toml has a [cluster] table (gateway/app.py); without it the
gateway is one process and never imports the Redis client. README "Cluster" describes the
topology and the failure behaviour of each part.

- records.py   pure: Redis entries and hash records, the board and live state from frames
- link.py      the Redis connection, key names, the Lua scripts, start-up checks
- mirror.py    writer: every commit, the board, keys and state to Redis
- sections.py  writer: what one publish sends, from batches or from the store
- follower.py  edge: bootstrap from Redis, then XREAD -> board -> hub
- edge_view.py edge: what streams and REST read (gateway/view.py's interface)
- caps.py      per-key connection caps across edges, with per-edge leases
- serve.py     the edge's and the writer's tasks, wired into app.serve
"""
