"""Webhook management: /v1/webhooks (business+; a key sees and changes only its own webhooks).

The secret is in the response of create and rotate-secret only. Filters are the drop
stream's and are validated by the same code (400 invalid_param naming the field).
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlsplit

import httpx
import trio
from quart import Blueprint, Response, jsonify, request

from ..auth import ApiKey
from ..core import client_json
from ..core.filters import ParamError, int_param, one
from ..handle import Gateway, current_gateway
from ..webhooks import queries as q
from ..webhooks.guard import BlockedDestination, checked_address, webhook_client
from ..webhooks.model import (
    FILTER_FIELDS,
    Webhook,
    compile_filters,
    validate_description,
    validate_events,
    validate_format,
    validate_url,
)
from ..webhooks.signing import new_secret
from ..webhooks.worker import TIMEOUT_S, send_test
from ..writer import wall_ms
from .common import ApiError, authenticate, bad_param, params, require_stream_tier, writer_only

bp = Blueprint("webhooks", __name__)
bp.before_request(writer_only)  # a cluster edge: 421 wrong_role with the writer's URL

MAX_PER_KEY = 25
RESOLVE_TIMEOUT_S = 5.0
CREATE_FIELDS = {"url", "destination_url", "format", "description", "events", "filters", *FILTER_FIELDS}
PATCH_FIELDS = CREATE_FIELDS | {"is_active"}


async def _owner() -> tuple[Gateway, ApiKey]:
    api_key = await authenticate()
    gw = current_gateway()
    require_stream_tier(gw, api_key, pbp=False, what="webhooks")
    return gw, api_key


async def _find(gw: Gateway, api_key: ApiKey, webhook_id: int) -> Webhook:
    hook = await gw.store.read(partial(q.get_webhook, webhook_id=webhook_id, key_id=api_key.id))
    if hook is None:
        raise ApiError(404, "not_found", f"no webhook {webhook_id} for this key")
    return hook


async def _body(allowed: set[str]) -> dict[str, Any]:
    raw = await request.get_data(as_text=False)
    try:
        body = client_json.loads(raw, strict_text=True) if raw.strip() else {}
    except client_json.ClientJsonError as exc:
        raise ApiError(400, "invalid_body", f"body is {exc.message}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "body must be a JSON object")
    nested = body.pop("filters", None)
    if nested is not None:
        if not isinstance(nested, dict):
            raise bad_param(ParamError("filters", "must be an object of drop-stream filters"))
        bad = sorted(set(nested) - set(FILTER_FIELDS))
        if bad:
            raise bad_param(ParamError(bad[0], f"unknown filter; use {', '.join(FILTER_FIELDS)}"))
        body = {**nested, **body}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_param(ParamError(unknown[0], f"unknown field; use {', '.join(sorted(allowed - {'filters'}))}"))
    if "destination_url" in body:
        body.setdefault("url", body.pop("destination_url"))
    return body


async def _destination(gw: Gateway, value: Any) -> str:
    """The URL, validated; with `block_private_addresses` its host must also resolve to public
    addresses only (a name that does not resolve now is accepted: every send checks again)."""
    block = gw.config.webhooks.block_private_addresses
    url = validate_url(value, block_private=block)
    if block:
        parts = urlsplit(url)
        try:
            with trio.move_on_after(RESOLVE_TIMEOUT_S):  # a slow resolver does not hold the request
                await checked_address(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        except BlockedDestination as exc:
            raise ParamError("url", str(exc)) from None
        except httpx.HTTPError:
            pass
    return url


def _wake(gw: Gateway) -> None:
    if gw.webhooks is not None:
        gw.webhooks.wake()


@bp.post("/v1/webhooks")
async def create() -> Any:
    gw, api_key = await _owner()
    body = await _body(CREATE_FIELDS)
    try:
        url = await _destination(gw, body.get("url"))
        fmt = validate_format(body.get("format", "json"))
        description = validate_description(body.get("description"))
        validate_events(body.get("events"))
        filters, _, _ = compile_filters(body, gw.universe.catalog())
    except ParamError as exc:
        raise bad_param(exc) from None

    hook = await gw.store.write_fn(partial(
        q.insert_webhook, key_id=api_key.id, url=url, description=description, fmt=fmt, filters=filters,
        secret=new_secret(), after_seq=gw.writer.last_seq, now=wall_ms(), max_per_key=MAX_PER_KEY))
    if hook is None:
        raise ApiError(409, "limit_reached", f"a key may have at most {MAX_PER_KEY} webhooks; delete one first",
                       limit=MAX_PER_KEY)
    _wake(gw)
    return jsonify(hook.public(with_secret=True)), 201


@bp.get("/v1/webhooks")
async def list_all() -> Response:
    gw, api_key = await _owner()
    hooks = await gw.store.read(partial(q.list_webhooks, key_id=api_key.id))
    return jsonify({"count": len(hooks), "data": [h.public() for h in hooks]})


@bp.get("/v1/webhooks/<int:webhook_id>")
async def get_one(webhook_id: int) -> Response:
    gw, api_key = await _owner()
    return jsonify((await _find(gw, api_key, webhook_id)).public())


@bp.patch("/v1/webhooks/<int:webhook_id>")
async def patch(webhook_id: int) -> Response:
    gw, api_key = await _owner()
    hook = await _find(gw, api_key, webhook_id)
    body = await _body(PATCH_FIELDS)
    changes: dict[str, Any] = {}
    try:
        if "url" in body:
            changes["url"] = await _destination(gw, body["url"])
        if "format" in body:
            changes["fmt"] = validate_format(body["format"])
        if "description" in body:
            changes["description"] = validate_description(body["description"])
        validate_events(body.get("events"))
        if any(name in body for name in FILTER_FIELDS):
            merged = {**hook.filters, **{k: v for k, v in body.items() if k in FILTER_FIELDS}}
            changes["filters"], _, _ = compile_filters(merged, gw.universe.catalog())
        if "is_active" in body:
            if not isinstance(body["is_active"], bool):
                raise ParamError("is_active", "must be true or false")
            changes["is_active"] = body["is_active"]
    except ParamError as exc:
        raise bad_param(exc) from None
    hook = await gw.store.write_fn(partial(q.update_webhook, webhook_id=hook.id, now=wall_ms(),
                                           last_seq=gw.writer.last_seq, **changes))
    _wake(gw)
    return jsonify(hook.public())


@bp.delete("/v1/webhooks/<int:webhook_id>")
async def delete(webhook_id: int) -> Response:
    gw, api_key = await _owner()
    if not await gw.store.write_fn(partial(q.delete_webhook, webhook_id=webhook_id, key_id=api_key.id)):
        raise ApiError(404, "not_found", f"no webhook {webhook_id} for this key")
    return jsonify({"id": webhook_id, "deleted": True})


@bp.post("/v1/webhooks/<int:webhook_id>/rotate-secret")
async def rotate_secret(webhook_id: int) -> Response:
    """A new secret, in force at once (retries of older deliveries are signed with it too)."""
    gw, api_key = await _owner()
    hook = await _find(gw, api_key, webhook_id)
    hook = await gw.store.write_fn(partial(q.update_webhook, webhook_id=hook.id, now=wall_ms(),
                                           last_seq=gw.writer.last_seq, secret=new_secret()))
    return jsonify(hook.public(with_secret=True))


@bp.post("/v1/webhooks/<int:webhook_id>/test")
async def test(webhook_id: int) -> Response:
    """Send one `test` event now (also to an inactive webhook) and report what the URL answered.

    It takes a slot of the key's share of the delivery pool like a delivery does, so a key
    firing tests at a hanging URL delays only itself; no slot within TEST_WAIT_S is a 429."""
    gw, api_key = await _owner()
    hook = await _find(gw, api_key, webhook_id)
    worker = gw.webhooks
    if worker is not None and worker.running:
        result = await worker.test(hook)
        if result is None:
            share = worker.shares.per_key
            raise ApiError(429, "rate_limit", f"this key already has {share} webhook POSTs in flight (deliveries "
                           f"and tests share [webhooks] per_key_concurrency = {share}); retry when they finish",
                           headers={"Retry-After": "5"}, retry_after_seconds=5, limit=share)
        did, outcome = result
    else:
        async with webhook_client(block_private=gw.config.webhooks.block_private_addresses) as client:
            did, outcome = await send_test(gw.store, client, hook, timeout_s=TIMEOUT_S)
    return jsonify({"delivery_id": did, "webhook_id": hook.id, "delivered": outcome.ok,
                    "status_code": outcome.status, "error": outcome.error,
                    "duration_ms": round(outcome.duration_ms, 1)})


@bp.get("/v1/webhooks/<int:webhook_id>/deliveries")
async def deliveries(webhook_id: int) -> Response:
    gw, api_key = await _owner()
    hook = await _find(gw, api_key, webhook_id)
    p = params()
    try:
        limit = int_param(p, "limit", 50, 1, 500)
        status = one(p, "status") or None
        if status is not None and status not in q.DELIVERY_STATES:
            raise ParamError("status", f"must be one of {', '.join(q.DELIVERY_STATES)}, got {status!r}")
    except ParamError as exc:
        raise bad_param(exc) from None
    rows = await gw.store.read(partial(q.list_deliveries, webhook_id=hook.id, limit=limit, status=status))
    return jsonify({"webhook_id": hook.id, "count": len(rows), "data": rows})
