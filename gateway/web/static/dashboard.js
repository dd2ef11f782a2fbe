/* gateway live dashboard. Plain JS, no dependencies, no build step.
 *
 * Auth: the key is POSTed once to /v1/session and then forgotten; everything after rides on
 * the HttpOnly `gw_session` cookie: the live WebSocket /ws/live/{sport} and the small
 * cookie-authenticated JSON routes under /dashboard/api/.
 *
 * Live data: one WebSocket. Every resumable frame carries `id`; the page remembers the
 * highest one and reconnects with ?last_event_id= after any drop (gateway restart, network
 * loss, slow-consumer cut), with exponential backoff and full jitter, so nothing is lost.
 *
 * Everything the server sends is rendered with textContent / DOM nodes, never innerHTML.
 */
"use strict";

(function () {
  // ----------------------------------------------------------------- helpers
  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const pad = (n) => String(n).padStart(2, "0");

  function clockTime(ms) {
    const d = new Date(ms);
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function startTime(ms) {
    const d = new Date(ms);
    const today = new Date();
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    if (d.toDateString() === today.toDateString()) return hm;
    return `${d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" })} ${hm}`;
  }

  function toMs(value) {
    if (typeof value === "number") return value;
    const t = Date.parse(value);
    return Number.isNaN(t) ? null : t;
  }

  function age(ms) {
    if (!ms) return "";
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    return `${Math.floor(s / 3600)}h`;
  }

  function price(p) {
    if (p === null || p === undefined) return "";
    return p > 0 ? `+${p}` : String(p);
  }

  function point(p, signed) {
    if (p === null || p === undefined) return "";
    return signed && p > 0 ? `+${p}` : String(p);
  }

  // American odds on the continuous cents line (-100 and +100 are the same point):
  // a higher value pays more, so it is the better price for the bettor.
  function cents(p) {
    return p > 0 ? p - 100 : p + 100;
  }

  // ----------------------------------------------------------------- state
  const MAX_DROPS = 200;
  const MAX_PLAYS = 120;
  const HEALTH_EVERY_MS = 10000;
  const UPCOMING_EVERY_MS = 60000;
  const HEARTBEAT_S = 5;
  const WATCHDOG_MS = HEARTBEAT_S * 1000 * 3 + 2000; // three missed heartbeats
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  const STABLE_MS = 5000; // a socket open this long resets the backoff
  const FINAL_LINGER_MS = 60000;
  const QUIET_MS = 120000;
  const AUTH_ERRORS = new Set(["session_expired", "invalid_session", "missing_session", "missing_key", "invalid_key",
    "tier_required"]);
  const POLICY_ERRORS = new Set(["forbidden_origin", "invalid_param"]);

  const S = {
    me: null,
    sports: [],
    sport: null,
    ws: null,
    lastId: null, // highest resumable frame id seen: the resume point
    attempt: 0,
    retryTimer: null,
    countdownTimer: null,
    watchdogTimer: null,
    openedAt: 0,
    serverError: null, // the last {"type":"error"} frame: explains the close that follows
    running: false,
    events: new Map(), // event_id -> EventView
    drops: 0,
    healthTimer: null,
    upcomingTimer: null,
    tickTimer: null,
    dirty: new Set(),
    frameScheduled: false,
  };

  // ----------------------------------------------------------------- connection status
  function setConn(state, text) {
    const box = $("conn");
    box.dataset.state = state;
    $("conn-text").textContent = text;
    box.title = S.lastId ? `resume point: id ${S.lastId}` : "";
  }

  // ----------------------------------------------------------------- login / session
  async function api(path, options) {
    const resp = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {}));
    let body = null;
    try { body = await resp.json(); } catch (_) { body = null; }
    return { ok: resp.ok, status: resp.status, body };
  }

  function showLogin(message) {
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-submit").disabled = false;
    $("login-key").focus();
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const input = $("login-key");
    const key = input.value.trim();
    if (!key) return;
    $("login-submit").disabled = true;
    $("login-error").textContent = "";
    let res;
    try {
      res = await api("/v1/session", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ api_key: key }),
      });
    } catch (_) {
      res = { ok: false, status: 0, body: { message: "the gateway is not reachable" } };
    }
    input.value = ""; // the key is not kept anywhere once the session exists
    if (!res.ok) {
      showLogin((res.body && res.body.message) || `login failed (${res.status})`);
      return;
    }
    start(res.body);
  }

  async function onLogout() {
    stop();
    try { await api("/v1/session", { method: "DELETE" }); } catch (_) { /* offline: the cookie expires anyway */ }
    S.lastId = null;
    clearBoard();
    clearFeeds();
    showLogin("Logged out.");
  }

  function sessionLost(message) {
    // keep the board, the feeds and the resume point: after a new login the stream resumes
    stop();
    setConn("offline", "logged out");
    showLogin(message);
  }

  // ----------------------------------------------------------------- start / stop
  async function start(me) {
    S.me = me;
    $("login").hidden = true;
    $("app").hidden = false;
    $("who").textContent = `${me.name} · ${me.tier}`;
    S.running = true;
    const ok = await loadSports();
    if (!ok || !S.running) return;
    connect();
    pollHealth();
    pollUpcoming();
    S.healthTimer = setInterval(pollHealth, HEALTH_EVERY_MS);
    S.upcomingTimer = setInterval(pollUpcoming, UPCOMING_EVERY_MS);
    S.tickTimer = setInterval(tick, 1000);
  }

  function stop() {
    S.running = false;
    closeSocket();
    for (const t of ["healthTimer", "upcomingTimer", "tickTimer"]) {
      clearInterval(S[t]);
      S[t] = null;
    }
    clearRetry();
  }

  async function loadSports() {
    const res = await api("/dashboard/api/sports").catch(() => null);
    if (!res) { setConn("offline", "gateway unreachable"); scheduleBootRetry(); return false; }
    if (res.status === 401) { sessionLost("Your session ended. Log in again."); return false; }
    if (!res.ok) { setConn("offline", "cannot load sports"); scheduleBootRetry(); return false; }
    S.sports = Array.isArray(res.body) ? res.body : [];
    const select = $("sport");
    select.replaceChildren();
    for (const s of S.sports) {
      const opt = el("option", null, `${s.title} · ${s.group}`);
      opt.value = s.key;
      select.append(opt);
    }
    let wanted = "";
    try { wanted = decodeURIComponent(location.hash.slice(1)); } catch (_) { wanted = ""; }
    const keys = S.sports.map((s) => s.key);
    S.sport = keys.includes(S.sport) ? S.sport
      : keys.includes(wanted) ? wanted
        : keys.includes("basketball_nba") ? "basketball_nba" : (keys[0] || null);
    if (S.sport) select.value = S.sport;
    if (!S.sport) $("board-empty").textContent = "No active sports yet: the gateway has no data.";
    return Boolean(S.sport);
  }

  function scheduleBootRetry() {
    clearRetry();
    S.retryTimer = setTimeout(() => { if (S.running) { stop(); start(S.me); } }, 3000);
  }

  function onSportChange() {
    const sport = $("sport").value;
    if (sport === S.sport) return;
    S.sport = sport;
    history.replaceState(null, "", `#${encodeURIComponent(sport)}`);
    closeSocket();
    clearRetry();
    S.lastId = null; // ids are global, but a new sport starts from a fresh snapshot
    S.attempt = 0;
    clearBoard();
    clearFeeds();
    connect();
    pollHealth();
    pollUpcoming();
  }

  // ----------------------------------------------------------------- WebSocket
  function wsUrl() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const q = new URLSearchParams();
    q.set("heartbeat_s", String(HEARTBEAT_S));
    q.set("threshold", $("threshold").value);
    if (!$("props").checked) q.set("kinds", "game");
    q.set("types", "odds_update,pbp_event,odds_drop,steam"); // steam: a badge on the card
    if (S.lastId !== null) q.set("last_event_id", String(S.lastId));
    return `${proto}://${location.host}/ws/live/${encodeURIComponent(S.sport)}?${q}`;
  }

  function connect() {
    if (!S.running || !S.sport) return;
    clearRetry();
    if (!navigator.onLine) { setConn("offline", "offline"); return; }
    if (S.attempt === 0 && !S.ws) setConn(S.lastId === null ? "connecting" : "reconnecting",
      S.lastId === null ? "connecting…" : "reconnecting…");
    else setConn("reconnecting", "reconnecting…");
    S.serverError = null;
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (_) {
      scheduleReconnect();
      return;
    }
    S.ws = ws;
    S.openedAt = 0;
    armWatchdog(); // also bounds a connect that never completes
    ws.onopen = () => { S.openedAt = Date.now(); armWatchdog(); };
    ws.onmessage = (msg) => { if (ws === S.ws) onFrame(msg.data); };
    ws.onclose = (ev) => { if (ws === S.ws) onClosed(ev.code, ev.reason); };
    ws.onerror = () => { /* onclose follows */ };
  }

  function closeSocket() {
    const ws = S.ws;
    S.ws = null;
    clearTimeout(S.watchdogTimer);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000, "bye"); } catch (_) { /* already closed */ }
    }
  }

  function armWatchdog() {
    clearTimeout(S.watchdogTimer);
    S.watchdogTimer = setTimeout(() => {
      // no frame (not even a heartbeat) for too long: the connection is dead without a close
      closeSocket();
      scheduleReconnect();
    }, WATCHDOG_MS);
  }

  function onClosed(code, reason) {
    const wasStable = S.openedAt && Date.now() - S.openedAt >= STABLE_MS;
    const err = S.serverError;
    closeSocket();
    if (!S.running) return;
    // The error frame sent before a refusal names the reason even when the close code is lost
    // (a refusal can reach the browser as 1006 if the close handshake does not complete).
    const kind = err ? err.error : "";
    if (code === 4001 || code === 4003 || AUTH_ERRORS.has(kind)) {
      if (kind === "tier_required") {
        sessionLost(`This key (tier ${S.me ? S.me.tier : "?"}) cannot open live streams: ${err.message}`);
      } else {
        sessionLost("Your session ended (expired, key revoked, or the gateway restarted with a new " +
          "session secret). Log in again: the board resumes where it stopped.");
      }
      return;
    }
    if (code === 1008 || POLICY_ERRORS.has(kind)) {
      // policy violation (bad parameter, foreign origin): retrying unchanged will not help
      setConn("offline", `refused: ${(err && err.message) || reason || "policy violation"}`);
      return;
    }
    if (wasStable) S.attempt = 0;
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearRetry();
    if (!S.running) return;
    if (!navigator.onLine) { setConn("offline", "offline"); return; }
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** S.attempt);
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2); // "equal jitter"
    S.attempt += 1;
    const due = Date.now() + delay;
    const show = () => {
      const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
      setConn("reconnecting", left > 0 ? `reconnecting in ${left}s` : "reconnecting…");
    };
    show();
    S.countdownTimer = setInterval(show, 250);
    S.retryTimer = setTimeout(() => { clearRetry(); connect(); }, delay);
  }

  function clearRetry() {
    clearTimeout(S.retryTimer);
    clearInterval(S.countdownTimer);
    S.retryTimer = S.countdownTimer = null;
  }

  function send(obj) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(obj));
  }

  // ----------------------------------------------------------------- frames
  function onFrame(text) {
    armWatchdog();
    let f;
    try { f = JSON.parse(text); } catch (_) { return; }
    if (!f || typeof f !== "object") return;
    if (typeof f.id === "number") {
      if (S.lastId !== null && f.id <= S.lastId) return; // already applied
      S.lastId = f.id;
    }
    switch (f.type) {
      case "connected":
        setConn("connected", "connected");
        break;
      case "initial_state":
        applySnapshot(f);
        break;
      case "odds_update":
        for (const row of f.data || []) applyRow(row, true);
        break;
      case "pbp_event":
        applyPlay(f);
        break;
      case "odds_drop":
        addDrop(f);
        break;
      case "steam":
        addSteam(f);
        break;
      case "stream_status":
        if (f.status === "reset") S.lastId = null; // a fresh initial_state follows
        if (f.status === "closing") setConn("reconnecting", "gateway restarting…");
        break;
      case "error":
        S.serverError = f;
        break;
      default:
        break; // heartbeat, pong, subscribed
    }
  }

  // ----------------------------------------------------------------- board model
  // EventView: {id, home, away, commence, live, rows: Map(book -> {row, tr, cells}), card, parts}
  const COLS = [
    { key: "away_ml", label: "Away", group: "ml", value: (r) => r.away_ml, render: (r) => [price(r.away_ml)] },
    { key: "home_ml", label: "Home", group: "ml", value: (r) => r.home_ml, render: (r) => [price(r.home_ml)] },
    { key: "draw_ml", label: "Draw", group: "ml", value: (r) => r.draw_ml, render: (r) => [price(r.draw_ml)],
      optional: true },
    { key: "away_spread", label: "Away", group: "spread", value: (r) => r.away_spread_price,
      pt: (r) => r.away_spread, better: 1, render: (r) => [point(r.away_spread, true), price(r.away_spread_price)] },
    { key: "home_spread", label: "Home", group: "spread", value: (r) => r.home_spread_price,
      pt: (r) => r.home_spread, better: 1, render: (r) => [point(r.home_spread, true), price(r.home_spread_price)] },
    { key: "over", label: "Over", group: "total", value: (r) => r.over_price, pt: (r) => r.total, better: -1,
      render: (r) => [r.total === null || r.total === undefined ? "" : `o${point(r.total)}`, price(r.over_price)] },
    { key: "under", label: "Under", group: "total", value: (r) => r.under_price, pt: (r) => r.total, better: 1,
      render: (r) => [r.total === null || r.total === undefined ? "" : `u${point(r.total)}`, price(r.under_price)] },
  ];

  const MARKET_OF = { ml: "h2h", spread: "spreads", total: "totals" };
  const OUTCOME_OF = { away_ml: "away", home_ml: "home", draw_ml: "draw", away_spread: "away", home_spread: "home",
    over: "over", under: "under" };
  const STEAM_SHOW_MS = 120000;

  function eventView(id, seed) {
    let ev = S.events.get(id);
    if (ev) return ev;
    ev = {
      id,
      home: seed.home_team || "",
      away: seed.away_team || "",
      commence: toMs(seed.commence_time),
      live: null,
      rows: new Map(),
      hasDraw: false,
      finalAt: 0,
      touched: 0,
      quiet: false,
      card: null,
      parts: null,
    };
    S.events.set(id, ev);
    buildCard(ev);
    placeCard(ev);
    updateEmpty();
    return ev;
  }

  function applySnapshot(f) {
    clearBoard();
    for (const ls of f.live_state || []) {
      const ev = eventView(ls.match_id, ls);
      ev.live = { score_a: ls.score_a, score_b: ls.score_b, state: ls.state || {}, last: ls.last_play || "" };
      touch(ev, ls.timestamp);
      markDirty(ev);
    }
    for (const row of f.data || []) applyRow(row, false);
    if (!$("pbp").childElementCount) {
      // an empty ticker starts with the last play of each live match
      const states = [...(f.live_state || [])].sort((a, b) => (a.timestamp || 0) - (b.timestamp || 0));
      for (const ls of states) {
        if (!ls.last_play) continue;
        addPlay({ state: ls.state, score_a: ls.score_a, score_b: ls.score_b, description: ls.last_play,
          captured_at_ms: ls.timestamp }, S.events.get(ls.match_id));
      }
    }
    updateEmpty();
  }

  function applyRow(row, flash) {
    if (!row || row.kind !== "game") return; // props feed the drop list only
    const ev = eventView(row.event_id, row);
    if (row.commence_time && !ev.commence) ev.commence = toMs(row.commence_time);
    if (row.action === "remove" || row.status === "closed") {
      const view = ev.rows.get(row.bookmaker);
      if (view) { view.tr.remove(); ev.rows.delete(row.bookmaker); }
      markDirty(ev);
      return;
    }
    let view = ev.rows.get(row.bookmaker);
    if (!view) {
      view = buildRow(ev, row.bookmaker);
      flash = false;
    }
    const old = view.row;
    view.row = row;
    if (row.draw_ml !== null && row.draw_ml !== undefined && !ev.hasDraw) {
      ev.hasDraw = true;
      ev.card.classList.add("has-draw");
    }
    const shut = new Set(row.suspended_markets || []);
    for (const col of COLS) {
      const cell = view.cells[col.key];
      const parts = col.render(row);
      const suspended = shut.has(MARKET_OF[col.group]);
      cell.td.classList.toggle("suspended", suspended);
      cell.td.title = suspended ? "suspended" : "click: line history";
      cell.pt.textContent = parts.length > 1 ? parts[0] : "";
      cell.px.textContent = parts[parts.length - 1];
      if (flash && old) {
        const a = col.value(old);
        const b = col.value(row);
        if (a !== null && a !== undefined && b !== null && b !== undefined && a !== b) {
          flashCell(cell.td, cents(b) > cents(a) ? "flash-up" : "flash-down");
        } else if (col.pt && col.pt(old) !== col.pt(row)) {
          flashCell(cell.td, "flash-line");
        }
      }
    }
    view.updated = row.last_update || Date.now();
    view.age.textContent = age(view.updated);
    touch(ev, view.updated);
    markDirty(ev);
  }

  function flashCell(td, cls) {
    td.classList.remove("flash-up", "flash-down", "flash-line");
    void td.offsetWidth; // restart the animation
    td.classList.add(cls);
  }

  function applyPlay(p) {
    const ev = eventView(p.match_id, { home_team: p.team_or_player_a, away_team: p.team_or_player_b });
    ev.live = { score_a: p.score_a, score_b: p.score_b, state: p.state || {}, last: p.description || "" };
    touch(ev, p.captured_at_ms || Date.now());
    if (ev.live.state.status === "final" && !ev.finalAt) ev.finalAt = Date.now();
    markDirty(ev);
    addPlay(p, ev);
  }

  function touch(ev, ms) {
    if (ms && ms > ev.touched) ev.touched = ms;
    if (ev.quiet && Date.now() - ev.touched < QUIET_MS) setQuiet(ev, false);
  }

  // an in-play event without a price change or a play for a while sinks below the active ones
  function setQuiet(ev, quiet) {
    ev.quiet = quiet;
    ev.card.classList.toggle("quiet", quiet);
    placeCard(ev);
  }

  function markDirty(ev) {
    S.dirty.add(ev.id);
    if (!S.frameScheduled) {
      S.frameScheduled = true;
      requestAnimationFrame(flushDirty);
    }
  }

  function flushDirty() {
    S.frameScheduled = false;
    for (const id of S.dirty) {
      const ev = S.events.get(id);
      if (ev) renderEvent(ev);
    }
    S.dirty.clear();
  }

  // ----------------------------------------------------------------- board DOM
  function buildCard(ev) {
    const card = el("article", "event");
    card.dataset.eventId = ev.id;
    const head = el("header", "event-head");
    const status = el("div", "event-status");
    const badge = el("span", "badge live", "LIVE");
    const clock = el("span", "event-clock");
    status.append(badge, clock);
    const teams = el("div", "teams");
    const awayLine = el("div", "team");
    const awayName = el("span", "team-name", ev.away);
    awayName.title = "away";
    const awayScore = el("span", "score");
    awayLine.append(awayName, awayScore);
    awayLine.prepend(el("span", "side-tag", "A"));
    const homeLine = el("div", "team");
    const homeName = el("span", "team-name", ev.home);
    homeName.title = "home";
    const homeScore = el("span", "score");
    homeLine.append(el("span", "side-tag", "H"), homeName, homeScore);
    teams.append(awayLine, homeLine);
    const meta = el("div", "event-meta");
    const start = el("div", "start");
    const last = el("div", "last-play");
    const quiet = el("div", "quiet-note");
    meta.append(start, last, quiet);
    head.append(status, teams, meta);

    const table = el("table", "odds");
    const thead = el("thead");
    const groups = el("tr", "groups");
    groups.append(el("th", "book-h", ""));
    const mlGroup = el("th", "grp", "Moneyline");
    mlGroup.colSpan = 3;
    const spGroup = el("th", "grp", "Spread");
    spGroup.colSpan = 2;
    const ttGroup = el("th", "grp", "Total");
    ttGroup.colSpan = 2;
    groups.append(mlGroup, spGroup, ttGroup, el("th", "age-h", ""));
    const labels = el("tr", "labels");
    labels.append(el("th", "book-h", "Book"));
    for (const col of COLS) {
      const th = el("th", `col-${col.key}`, col.label);
      labels.append(th);
    }
    labels.append(el("th", "age-h", "Upd"));
    thead.append(groups, labels);
    const tbody = el("tbody");
    table.append(thead, tbody);
    const empty = el("div", "event-noprices", "No prices yet for this event.");
    card.append(head, table, empty);
    ev.card = card;
    ev.parts = { badge, clock, awayName, homeName, awayScore, homeScore, start, last, quiet, tbody, mlGroup, empty };
  }

  function placeCard(ev) {
    const board = $("board");
    const after = [...S.events.values()]
      .filter((o) => o !== ev && o.card && o.card.isConnected)
      .sort(byStart)
      .find((o) => byStart(ev, o) < 0);
    board.insertBefore(ev.card, after ? after.card : null);
  }

  function byStart(a, b) {
    return (a.quiet - b.quiet) || (a.commence || 0) - (b.commence || 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  function buildRow(ev, book) {
    const tr = el("tr");
    tr.dataset.book = book;
    tr.append(el("td", "book", book));
    const cells = {};
    for (const col of COLS) {
      const td = el("td", `num col-${col.key}`);
      const pt = el("span", "pt");
      const px = el("span", "px");
      td.append(pt, px);
      td.dataset.market = MARKET_OF[col.group];
      td.dataset.outcome = OUTCOME_OF[col.key];
      td.addEventListener("click", () => showHistory(ev, book, td.dataset.market, td.dataset.outcome));
      tr.append(td);
      cells[col.key] = { td, pt, px };
    }
    const ageTd = el("td", "age");
    tr.append(ageTd);
    const view = { row: null, tr, cells, age: ageTd, updated: 0 };
    ev.rows.set(book, view);
    const rows = [...ev.rows.keys()].sort();
    const next = rows[rows.indexOf(book) + 1];
    ev.parts.tbody.insertBefore(tr, next ? ev.rows.get(next).tr : null);
    return view;
  }

  function renderEvent(ev) {
    const p = ev.parts;
    if (ev.home && p.homeName.textContent !== ev.home) p.homeName.textContent = ev.home;
    if (ev.away && p.awayName.textContent !== ev.away) p.awayName.textContent = ev.away;
    p.start.textContent = ev.commence ? `start ${startTime(ev.commence)}` : "";
    const live = ev.live;
    if (live) {
      p.homeScore.textContent = live.score_a ?? "";
      p.awayScore.textContent = live.score_b ?? "";
      p.clock.textContent = periodText(live.state);
      p.last.textContent = live.last || "";
      p.last.title = live.last || "";
      const final = live.state.status === "final";
      p.badge.textContent = final ? "FINAL" : "LIVE";
      p.badge.className = final ? "badge final" : "badge live";
      ev.card.classList.toggle("final", final);
      const a = Number(live.score_a);
      const b = Number(live.score_b);
      p.homeScore.classList.toggle("leading", a > b);
      p.awayScore.classList.toggle("leading", b > a);
    } else {
      p.clock.textContent = "";
    }
    p.mlGroup.colSpan = ev.hasDraw ? 3 : 2;
    p.empty.hidden = ev.rows.size > 0;
    highlightBest(ev);
  }

  function periodText(state) {
    if (!state) return "";
    if (state.status === "final") return "";
    const period = state.period;
    const clock = state.clock || "";
    const sport = S.sport || "";
    if (period === null || period === undefined || period === "") return clock;
    const n = Number(period);
    if (sport.startsWith("baseball")) {
      const half = clock === "top" ? "Top" : clock === "bottom" || clock === "bot" ? "Bot" : clock;
      return `${half} ${period}`;
    }
    if (sport.startsWith("basketball") || sport.startsWith("americanfootball")) {
      return `${n > 4 ? `OT${n - 4 > 1 ? n - 4 : ""}` : `Q${period}`} ${clock}`;
    }
    if (sport.startsWith("icehockey")) return `${n > 3 ? "OT" : `P${period}`} ${clock}`;
    if (sport.startsWith("soccer")) return `${n === 1 ? "1H" : n === 2 ? "2H" : `P${period}`} ${clock}`;
    return `P${period} ${clock}`;
  }

  // Best price per column within an event. Spreads/totals compare the line first (more points
  // for a spread side, a lower total for the over, a higher one for the under), then the price.
  function highlightBest(ev) {
    for (const col of COLS) {
      let best = null;
      let count = 0;
      for (const view of ev.rows.values()) {
        const v = view.row ? col.value(view.row) : null;
        if (v === null || v === undefined) continue;
        count += 1;
        const score = rank(col, view.row);
        if (best === null || compare(score, best) > 0) best = score;
      }
      for (const view of ev.rows.values()) {
        const v = view.row ? col.value(view.row) : null;
        const isBest = count > 1 && v !== null && v !== undefined && compare(rank(col, view.row), best) === 0;
        view.cells[col.key].td.classList.toggle("best", isBest);
      }
    }
  }

  function rank(col, row) {
    const line = col.pt ? (col.pt(row) ?? 0) * col.better : 0;
    return [line, cents(col.value(row))];
  }

  function compare(a, b) {
    return a[0] - b[0] || a[1] - b[1];
  }

  function clearBoard() {
    S.events.clear();
    S.dirty.clear();
    $("board").replaceChildren();
    updateEmpty();
  }

  function updateEmpty() {
    const empty = $("board-empty");
    const none = S.events.size === 0;
    empty.hidden = !none;
    if (none) {
      const title = (S.sports.find((s) => s.key === S.sport) || {}).title || S.sport || "this sport";
      empty.textContent = `No live ${title} events right now. Prices appear here as soon as a game starts.`;
    }
  }

  // ----------------------------------------------------------------- feeds
  const SIDE_LABEL = {
    h2h_home: "ML home", h2h_away: "ML away", h2h_draw: "ML draw",
    spread_home: "spread home", spread_away: "spread away", total_over: "over", total_under: "under",
  };

  function addDrop(d) {
    const li = el("li", `drop ${d.direction === "toward_favorite" ? "fav" : "dog"}`);
    li.dataset.id = d.id ?? "";
    li.append(el("time", "t", clockTime(d.timestamp || Date.now())));
    const main = el("span", "main");
    main.append(el("span", "book", d.bookmaker));
    let what;
    if (d.kind === "prop") {
      what = `${d.player || ""} ${d.market || d.market_key} ${d.outcome === "over" ? "o" : "u"}${point(d.line)}`;
    } else {
      const ln = d.point === null || d.point === undefined ? "" : ` ${point(d.point, d.market_key === "spreads")}`;
      what = `${d.side}${ln}`;
    }
    const whatSpan = el("span", "what", what);
    whatSpan.title = d.kind === "prop" ? what : `${SIDE_LABEL[d.side] || d.side}${d.point != null ? ` ${d.point}` : ""}`;
    main.append(whatSpan);
    li.append(main);
    const move = el("span", "move");
    move.append(el("span", "prev", price(d.prev)), el("span", "arrow", "→"), el("span", "new", price(d.new)));
    li.append(move);
    const dir = el("span", "dir", `${d.direction === "toward_favorite" ? "▼" : "▲"}${d.delta_cents}`);
    dir.title = d.direction;
    li.append(dir);
    const match = el("span", "match", `${d.away_team} @ ${d.home_team}`);
    match.title = `${d.away_team} @ ${d.home_team} · ${d.direction}`;
    li.append(match);
    const list = $("drops");
    list.prepend(li);
    while (list.childElementCount > MAX_DROPS) list.lastElementChild.remove();
    S.drops += 1;
    $("drops-count").textContent = String(S.drops);
  }

  // a steam move: a badge on its event's card for a while, and a line in the moves feed
  function addSteam(f) {
    const arrow = f.direction === "toward_favorite" ? "▼" : "▲";
    const books = (f.books || []).length;
    const text = `STEAM ${f.side || f.market_key} ${arrow}`;
    const ev = S.events.get(f.event_id);
    if (ev) {
      let badge = ev.parts.steam;
      if (!badge) {
        badge = ev.parts.steam = el("span", "badge steam");
        ev.parts.badge.after(badge);
      }
      badge.textContent = text;
      badge.title = `${books} books in ${Math.round((f.time_spread_ms || 0) / 1000)} s, first ${f.first_mover}`;
      badge.hidden = false;
      clearTimeout(badge.timer);
      badge.timer = setTimeout(() => { badge.hidden = true; }, STEAM_SHOW_MS);
    }
    const li = el("li", "drop steam");
    li.dataset.id = f.id ?? "";
    li.append(el("time", "t", clockTime(f.timestamp || Date.now())));
    const main = el("span", "main");
    main.append(el("span", "book", `steam ×${books}`), el("span", "what", f.side || f.market_key));
    li.append(main, el("span", "move", `first ${f.first_mover}`), el("span", "dir", `${arrow}${f.delta_cents}+`));
    li.append(el("span", "match", `${f.away_team} @ ${f.home_team}`));
    const list = $("drops");
    list.prepend(li);
    while (list.childElementCount > MAX_DROPS) list.lastElementChild.remove();
  }

  // ----------------------------------------------------------------- line history sparkline
  async function showHistory(ev, book, market, outcome) {
    const panel = $("spark");
    const title = $("spark-title");
    const svg = $("spark-svg");
    panel.hidden = false;
    panel.dataset.state = "loading";
    title.textContent = `${book} ${market} ${outcome} · ${ev.away} @ ${ev.home}`;
    $("spark-info").textContent = "loading…";
    const q = new URLSearchParams({ bookmakers: book, markets: market });
    let body;
    try {
      const r = await api(`/dashboard/api/sports/${encodeURIComponent(S.sport)}/events/${encodeURIComponent(ev.id)}/history?${q}`);
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      body = r.body || {};
    } catch (err) {
      $("spark-info").textContent = `no history: ${err.message}`;
      panel.dataset.state = "error";
      return;
    }
    const series = (body.series || []).filter((s) => s.outcome === outcome);
    const points = [];
    for (const s of series) for (const c of s.changes) points.push(c);
    points.sort((a, b) => a.t - b.t);
    while (svg.firstChild) svg.firstChild.remove();
    const priced = points.filter((c) => c.price !== null);
    if (!priced.length) {
      $("spark-info").textContent = "no price changes kept for this cell";
      panel.dataset.state = "empty";
      return;
    }
    const W = 280, H = 60;
    const t0 = priced[0].t, t1 = Math.max(priced[priced.length - 1].t, t0 + 1);
    const ys = priced.map((c) => cents(c.price));
    const lo = Math.min(...ys), hi = Math.max(...ys, lo + 1);
    const xy = priced.map((c) => [((c.t - t0) / (t1 - t0)) * W, H - ((cents(c.price) - lo) / (hi - lo)) * (H - 8) - 4]);
    const path = [];
    xy.forEach(([x, y], i) => { if (i) path.push(`${x.toFixed(1)},${xy[i - 1][1].toFixed(1)}`); path.push(`${x.toFixed(1)},${y.toFixed(1)}`); });
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", path.join(" "));
    line.setAttribute("class", "spark-line");
    svg.append(line);
    for (const c of points.filter((p) => p.price === null)) {
      const x = ((Math.min(Math.max(c.t, t0), t1) - t0) / (t1 - t0)) * W;
      const mark = document.createElementNS("http://www.w3.org/2000/svg", "line");
      for (const [k, v] of [["x1", x], ["x2", x], ["y1", 0], ["y2", H]]) mark.setAttribute(k, String(v));
      mark.setAttribute("class", "spark-suspended");
      svg.append(mark);
    }
    const last = series.length ? series[series.length - 1] : null;
    const open = series.length && series[0].open ? price(series[0].open.price) : "";
    const close = last && last.close ? ` · close ${price(last.close.price)}` : "";
    $("spark-info").textContent = `${priced.length} changes · open ${open} · now ${price(priced[priced.length - 1].price)}${close}`;
    panel.dataset.state = "ready";
  }

  function addPlay(p, ev) {
    const li = el("li", `play ${p.event_type ? `ev-${String(p.event_type).replace(/[^a-z0-9_-]/gi, "")}` : ""}`);
    li.append(el("span", "clock", periodText(p.state) || (p.state && p.state.status === "final" ? "Final" : "")));
    li.append(el("span", "score", `${p.score_b ?? ""}–${p.score_a ?? ""}`));
    li.append(el("span", "desc", p.description || p.event_type || ""));
    const match = el("span", "match", `${ev.away} @ ${ev.home}`);
    li.append(match);
    li.title = `${clockTime(p.occurred_at_ms || p.captured_at_ms || Date.now())} · ${ev.away} @ ${ev.home}`;
    const list = $("pbp");
    list.prepend(li);
    while (list.childElementCount > MAX_PLAYS) list.lastElementChild.remove();
  }

  function clearFeeds() {
    $("drops").replaceChildren();
    $("pbp").replaceChildren();
    $("health").replaceChildren();
    $("upcoming").replaceChildren();
    S.drops = 0;
    $("drops-count").textContent = "";
  }

  // ----------------------------------------------------------------- polling
  async function pollHealth() {
    if (!S.running || !S.sport) return;
    const sport = S.sport;
    let res;
    try {
      res = await api(`/dashboard/api/sports/${encodeURIComponent(sport)}/source-health`);
    } catch (_) {
      $("health-age").textContent = "unreachable";
      return;
    }
    if (sport !== S.sport) return;
    if (res.status === 401) { sessionLost("Your session ended. Log in again."); return; }
    if (!res.ok || !res.body) { $("health-age").textContent = `error ${res.status}`; return; }
    const body = $("health");
    body.replaceChildren();
    const rows = res.body.results || [];
    if (rows.length === 0) {
      const tr = el("tr");
      const td = el("td", "muted", "no source has reported for this sport yet");
      td.colSpan = 4;
      tr.append(td);
      body.append(tr);
    }
    for (const r of rows) {
      const tr = el("tr");
      const name = el("td", "src");
      name.append(el("span", null, r.source), el("span", "role", r.role));
      tr.append(name);
      tr.append(el("td", "num", `${r.events_last_5min ?? 0}/5m`));
      const secs = r.seconds_since_last_event;
      tr.append(el("td", "num", secs === null || secs === undefined ? "–" : `${secs < 10 ? secs.toFixed(1) : Math.round(secs)}s`));
      const st = el("td", "st");
      st.append(el("span", `badge ${r.status === "fresh" ? "fresh" : "stale"}`, r.status));
      tr.append(st);
      body.append(tr);
    }
    $("health-age").textContent = `checked ${clockTime(Date.now())}`;
  }

  async function pollUpcoming() {
    if (!S.running || !S.sport) return;
    const sport = S.sport;
    let res;
    try {
      res = await api(`/dashboard/api/sports/${encodeURIComponent(sport)}/upcoming`);
    } catch (_) {
      return;
    }
    if (sport !== S.sport || !res.ok || !Array.isArray(res.body)) return;
    const list = $("upcoming");
    list.replaceChildren();
    for (const e of res.body) {
      if (S.events.has(e.id)) continue;
      const li = el("li");
      li.append(el("time", "t", startTime(e.commence_time)), el("span", null, `${e.away_team} @ ${e.home_team}`));
      list.append(li);
    }
    if (!list.childElementCount) list.append(el("li", "muted", "nothing scheduled"));
  }

  // once a second: ages, and finished games leave the board after a while
  function tick() {
    const now = Date.now();
    for (const ev of S.events.values()) {
      for (const view of ev.rows.values()) view.age.textContent = age(view.updated);
      if (ev.finalAt && now - ev.finalAt > FINAL_LINGER_MS) {
        ev.card.remove();
        S.events.delete(ev.id);
        continue;
      }
      const quiet = ev.touched > 0 && now - ev.touched >= QUIET_MS;
      if (quiet !== ev.quiet) setQuiet(ev, quiet);
      if (quiet) ev.parts.quiet.textContent = `no updates for ${age(ev.touched)}`;
    }
    updateEmpty();
  }

  // ----------------------------------------------------------------- boot
  function onThresholdChange() {
    send({ type: "subscribe", threshold: Number($("threshold").value) });
  }

  function onPropsChange() {
    send({ type: "subscribe", kinds: $("props").checked ? null : ["game"] });
  }

  function hideHistory() {
    $("spark").hidden = true;
  }

  async function boot() {
    $("login-form").addEventListener("submit", onLogin);
    $("logout").addEventListener("click", onLogout);
    $("sport").addEventListener("change", onSportChange);
    $("threshold").addEventListener("change", onThresholdChange);
    $("props").addEventListener("change", onPropsChange);
    $("spark-close").addEventListener("click", hideHistory);
    // the browser lost its network: drop the socket (it is dead or soon will be) and wait;
    // back online: reconnect at once and resume
    window.addEventListener("offline", () => {
      if (!S.running) return;
      closeSocket();
      clearRetry();
      setConn("offline", "offline");
    });
    window.addEventListener("online", () => {
      if (!S.running || S.ws) return;
      S.attempt = 0;
      connect();
    });
    let res = null;
    try { res = await api("/v1/session"); } catch (_) { res = null; }
    if (res && res.ok) start(res.body);
    else showLogin(res ? "" : "The gateway is not reachable.");
  }

  boot();
})();
