-- gateway schema. Idempotent: applied at every start; the version check refuses a store
-- written by a different schema version. Times are unix milliseconds.

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- sports catalog: seeded from the shipped list (inactive) and from ingest (active)
CREATE TABLE IF NOT EXISTS sports (
    key           TEXT PRIMARY KEY,
    grp           TEXT NOT NULL,
    title         TEXT NOT NULL,
    description   TEXT NOT NULL,
    has_outrights INTEGER NOT NULL DEFAULT 0,
    active        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS books (
    key      TEXT PRIMARY KEY,
    title    TEXT NOT NULL,
    coverage TEXT NOT NULL CHECK (coverage IN ('per_market', 'game_line'))
);

CREATE TABLE IF NOT EXISTS markets (
    key TEXT PRIMARY KEY
);

CREATE TABLE IF NOT EXISTS events (
    id               TEXT PRIMARY KEY,
    sport_key        TEXT NOT NULL,
    home_team        TEXT NOT NULL,
    away_team        TEXT NOT NULL,
    commence_time_ms INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_sport ON events (sport_key, commence_time_ms);

-- current price of every outcome (the board); point/player '' when they do not apply
CREATE TABLE IF NOT EXISTS quotes (
    event_id    TEXT NOT NULL,
    bookmaker   TEXT NOT NULL,
    market_key  TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    player      TEXT NOT NULL DEFAULT '',
    point       REAL,
    price       INTEGER NOT NULL,
    observed_ms INTEGER NOT NULL,
    status      TEXT NOT NULL DEFAULT 'open',  -- open | suspended | closed (issue 15)
    PRIMARY KEY (event_id, bookmaker, market_key, outcome, player)
) WITHOUT ROWID;

-- current state of each live match, from its plays
CREATE TABLE IF NOT EXISTS live_state (
    match_id   TEXT PRIMARY KEY,
    sport_key  TEXT NOT NULL,
    home_team  TEXT NOT NULL,
    away_team  TEXT NOT NULL,
    score_a    TEXT NOT NULL,
    score_b    TEXT NOT NULL,
    period     TEXT,
    clock      TEXT,
    status     TEXT NOT NULL,
    source     TEXT NOT NULL,
    last_play  TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- the append-only stream log: every resumable frame, its id is the SSE/WS event id.
-- A row keeps what its frame is built from (gateway/core/logcodec.py), not the frame's JSON;
-- replay rebuilds the very same frame. About 45 bytes a row with its index (README, Storage).
-- AUTOINCREMENT: ids are never reused, even after pruning or a crash.
CREATE TABLE IF NOT EXISTS stream_log (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    topic INTEGER NOT NULL,  -- sport code (log_names) * 4 + stream: 1 odds, 2 drop, 3 pbp
    ms    INTEGER NOT NULL,  -- created, unix ms; grows with seq, so pruning by age needs no index
    body  BLOB NOT NULL      -- layout, live flag and fields as varints (logcodec.py)
);
-- an index entry holds the rowid (seq): this serves "topic T after id N, in id order"
CREATE INDEX IF NOT EXISTS stream_log_topic ON stream_log (topic);

-- the stream log's dictionary: every repeated string and every event, once, by code.
-- used_seq trails the last row using it by at most store.NAMES_SLACK, so pruning can drop
-- the names no remaining row uses.
CREATE TABLE IF NOT EXISTS log_names (
    code     INTEGER PRIMARY KEY AUTOINCREMENT,
    value    TEXT NOT NULL UNIQUE,  -- JSON: "pinnacle", ["e", event_id, sport, home, away, commence], ...
    used_seq INTEGER NOT NULL
);

-- line history (issue 15): every price change, kept [database] history_days apart from the
-- resume window. A series is one (event, book, market, outcome, player, point); a change is
-- (event code, time, series number within the event, price code), clustered by event and
-- time so one event's history is one index range. Price code: American odds, or 0 suspended,
-- 1 closed. About 20 bytes a change (README, Line history).
CREATE TABLE IF NOT EXISTS history_events (
    code     INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    last_ms  INTEGER NOT NULL  -- newest change: whole events past the window go at once
);
CREATE TABLE IF NOT EXISTS history_series (
    event      INTEGER NOT NULL,  -- history_events.code
    n          INTEGER NOT NULL,  -- the series' number within its event
    bookmaker  TEXT NOT NULL,
    market_key TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    player     TEXT NOT NULL DEFAULT '',
    point      REAL,
    PRIMARY KEY (event, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS price_history (
    event INTEGER NOT NULL,
    ms    INTEGER NOT NULL,
    n     INTEGER NOT NULL,
    price INTEGER NOT NULL,
    PRIMARY KEY (event, ms, n)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS api_keys (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    key_hash   TEXT NOT NULL UNIQUE,  -- sha256 hex of the key; the key itself is never stored
    prefix     TEXT NOT NULL,         -- first characters, to recognise a key in listings
    tier       TEXT NOT NULL,
    scopes     TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);

-- webhooks (issue 7): drops POSTed to URLs registered by keys. gateway/webhooks/queries.py.
-- The secret is kept as is: it signs every delivery (HMAC), so it cannot be hashed.
CREATE TABLE IF NOT EXISTS webhooks (
    id                   INTEGER PRIMARY KEY,
    key_id               INTEGER NOT NULL,      -- api_keys.id of the owner
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    format               TEXT NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'slack', 'discord')),
    filters              TEXT NOT NULL,         -- JSON: the drop-stream filters, normalised
    secret               TEXT NOT NULL,
    is_active            INTEGER NOT NULL DEFAULT 1,
    disabled_reason      TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    after_seq            INTEGER NOT NULL DEFAULT 0,  -- only drops with a later stream id
    created_ms           INTEGER NOT NULL,
    updated_ms           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_key ON webhooks (key_id);

-- the durable delivery queue: pending rows are sent at next_attempt_ms, even after a restart
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id              TEXT PRIMARY KEY,           -- dlv_..., also the body's id and X-Gateway-Delivery-Id
    webhook_id      INTEGER NOT NULL,
    event_type      TEXT NOT NULL,              -- odds_drop | test
    seq             INTEGER,                    -- stream id of the drop
    body            TEXT NOT NULL,              -- the exact bytes every attempt sends
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    last_status     INTEGER,                    -- HTTP status of the last attempt
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);
CREATE INDEX IF NOT EXISTS webhook_deliveries_hook ON webhook_deliveries (webhook_id, created_ms);

PRAGMA user_version = 3;
