"""HTTP push ingest: POST /v1/ingest/odds and /v1/ingest/pbp (keys with the `ingest` scope).

Each row is validated on its own: good rows are stored, bad rows come back with their index
and reason. A body that is not a JSON list stores nothing. The response is sent after the
rows are committed, so a 200 means they are in the store (and already published).

A request holds at most MAX_ROWS rows: flat quotes and PBP rows count one each, a The Odds
API event list counts its outcomes (one event with 60,000 outcomes is 60,000 rows).
"""

from __future__ import annotations

import re
from typing import Any

from quart import Blueprint, Response, jsonify, request

from ..core import client_json
from ..core.model import Play, Quote
from ..core.parse import RowError, count_toa_rows, parse_flat_quote, parse_pbp_row, parse_toa_events
from ..handle import current_gateway
from ..writer import wall_ms
from .common import ApiError, authenticate, writer_only

bp = Blueprint("ingest", __name__)
bp.before_request(writer_only)  # a cluster edge: 421 wrong_role with the writer's URL

MAX_ROWS = 50_000
_SOURCE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


async def _body_list() -> list[Any]:
    raw = await request.get_data(as_text=False)
    try:
        body = client_json.loads(raw)
    except client_json.ClientJsonError as exc:
        raise ApiError(400, "invalid_body", f"body is {exc.message}") from None
    if isinstance(body, dict):
        for name in ("quotes", "events", "plays", "data"):
            if isinstance(body.get(name), list):
                body = body[name]
                break
    if not isinstance(body, list):
        raise ApiError(400, "invalid_body", "body must be a JSON list of rows")
    _check_rows(len(body))
    return body


def _check_rows(rows: int) -> None:
    if rows > MAX_ROWS:
        raise ApiError(413, "payload_too_large", f"at most {MAX_ROWS} rows per request (this one has {rows}; "
                       "each outcome of a The Odds API event counts as a row)", limit=MAX_ROWS)


async def _authorise() -> str:
    api_key = await authenticate()
    if "ingest" not in api_key.scopes:
        raise ApiError(403, "scope_required", "this key lacks the ingest scope "
                       "(create one with: gateway keys create --scope ingest ...)")
    source = request.args.get("source") or "push"
    if not _SOURCE.match(source):
        raise ApiError(400, "invalid_param", "source must be 1-64 letters, digits, _ . : -", param="source")
    return source


def _report(accepted: int, rejected: list[dict[str, Any]], **extra: Any) -> Response:
    if accepted == 0 and rejected:
        raise ApiError(422, "invalid_rows", f"all {len(rejected)} rows were rejected; nothing was stored",
                       rejected=rejected[:1000])
    return jsonify({"accepted": accepted, "rejected": rejected[:1000], "rejected_count": len(rejected), **extra})


@bp.post("/v1/ingest/odds")
async def ingest_odds() -> Response:
    source = await _authorise()
    body = await _body_list()
    now = wall_ms()
    quotes: list[Quote] = []
    rejected: list[dict[str, Any]] = []
    if body and all(isinstance(r, dict) and "bookmakers" in r for r in body):
        _check_rows(count_toa_rows(body))
        fmt = request.args.get("oddsFormat", "decimal")
        if fmt not in ("decimal", "american"):
            raise ApiError(400, "invalid_param", "oddsFormat must be decimal or american", param="oddsFormat")
        quotes, errors = parse_toa_events(body, now_ms=now, odds_format=fmt)
        rejected = [{"index": i, "error": reason} for i, reason in errors]
    else:
        for i, row in enumerate(body):
            try:
                quotes.append(parse_flat_quote(row, now_ms=now))
            except RowError as exc:
                rejected.append({"index": i, "error": str(exc)})
    if quotes:
        await current_gateway().writer.submit_and_wait(quotes, [], source=source)
    return _report(len(quotes), rejected)


@bp.post("/v1/ingest/pbp")
async def ingest_pbp() -> Response:
    await _authorise()
    body = await _body_list()
    now = wall_ms()
    plays: list[Play] = []
    rejected: list[dict[str, Any]] = []
    for i, row in enumerate(body):
        try:
            plays.append(parse_pbp_row(row, now_ms=now))
        except RowError as exc:
            rejected.append({"index": i, "error": str(exc)})
    if plays:
        await current_gateway().writer.submit_and_wait([], plays, source="push")
    return _report(len(plays), rejected)
