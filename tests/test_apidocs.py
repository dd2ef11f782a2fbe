"""/openapi.json and /asyncapi.json: valid against their specifications, served by a running
gateway, covering every route the app registers (and nothing it does not), and describing the
frames a real gateway actually sends."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio
from openapi_spec_validator import validate
from trio_websocket import open_websocket_url

from gateway.app import create_app, open_gateway
from gateway.web.apidocs import CHANNELS, asyncapi, openapi
from gateway.web.streams_asgi import INGEST_KINDS, WS_PATHS, WS_ROUTE
from gateway.web.streams_asgi import ROUTES as SSE_ROUTES

from .conftest import Running, make_config
from .helpers import next_of, push, quote, sse_events

ASYNCAPI_SCHEMA = Path(__file__).resolve().parent / "data" / "asyncapi-3.0.0.schema.json"
IGNORED_RULES = {"/static/<path:filename>"}  # Quart's default static route: no folder behind it, always 404
SPORT = "basketball_nba"


def _asyncapi_validator() -> jsonschema.Draft7Validator:
    # @asyncapi/specs 6.11.1, schemas/3.0.0-without-$id.json (Apache-2.0), vendored unchanged
    return jsonschema.Draft7Validator(json.loads(ASYNCAPI_SCHEMA.read_text()))


def test_openapi_is_valid_openapi_3_1() -> None:
    doc = openapi()
    assert doc["openapi"] == "3.1.0"
    validate(doc)
    broken = copy.deepcopy(doc)
    broken["paths"]["/healthz"]["get"]["responses"] = {"200": {"content": {}}}  # no description
    with pytest.raises(Exception, match="description"):
        validate(broken)


def test_asyncapi_is_valid_asyncapi_3() -> None:
    validator = _asyncapi_validator()
    doc = asyncapi()
    errors = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert not errors, errors
    broken = copy.deepcopy(doc)
    broken["operations"]["drops_frames"]["action"] = "emit"  # the validator does bite
    assert list(validator.iter_errors(broken))


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("build", [openapi, asyncapi])
def test_every_ref_resolves(build: Any) -> None:
    doc = build()
    for target in set(_refs(doc)):
        node = doc
        for part in target.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, target
            node = node[part]


def _app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    gw = open_gateway(make_config(tmp_path))
    try:
        app = create_app(gw)
        out = set()
        for rule in app.url_map.iter_rules():
            if rule.rule in IGNORED_RULES:
                continue
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            out |= {(m.lower(), path) for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS")}
        # the WebSocket routes are served below Quart too (streams_asgi.WS_ROUTE), and ingest's POSTs
        for path in WS_PATHS:
            assert WS_ROUTE.match(re.sub(r"\{\w+\}", "x", path)), path
        return out | {("get", p) for p in WS_PATHS} | {("post", p) for p in INGEST_KINDS}
    finally:
        gw.store.close()


def _doc_routes(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, p) for p, ops in doc["paths"].items() for m in ops}


def _is_sse(op: dict[str, Any]) -> bool:
    return "text/event-stream" in op["responses"].get("200", {}).get("content", {})


def test_every_registered_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    doc = openapi()
    quart = _app_routes(tmp_path)
    documented = _doc_routes(doc)
    sse_docs = {p for p, ops in doc["paths"].items() if _is_sse(ops.get("get", {"responses": {}}))}
    assert quart - documented == set(), "routes the app serves that /openapi.json does not describe"
    # the SSE routes live below Quart (streams_asgi.ROUTES): each regex is documented, and each
    # documented stream path is one of them
    for pattern, _ in SSE_ROUTES:
        assert any(pattern.match(re.sub(r"\{\w+\}", "x", p)) for p in sse_docs), pattern.pattern
    for path in sse_docs:
        assert any(pattern.match(re.sub(r"\{\w+\}", "x", path)) for pattern, _ in SSE_ROUTES), path
    assert documented - quart - {("get", p) for p in sse_docs} == set(), "documented routes the app lacks"


def test_every_stream_route_has_its_channel(tmp_path: Path) -> None:
    doc, api = asyncapi(), openapi()
    addresses = {c["address"] for c in doc["channels"].values()}
    streams = {p for p, ops in api["paths"].items() for op in ops.values()
               if _is_sse(op) or "101" in op["responses"]}
    assert streams == addresses
    ws_rules = {p for m, p in _app_routes(tmp_path) if p.startswith(("/ws/", "/v1/ws/"))}
    assert ws_rules and ws_rules <= addresses
    for ch in CHANNELS:  # WebSocket channels take the client messages, SSE channels none
        messages = set(doc["channels"][ch.name]["messages"])
        assert ({"Subscribe", "Resume", "Ping", "Unsubscribe"} <= messages) == (ch.transport == "ws")


def _frame_validator(doc: dict[str, Any]) -> Any:
    def check(frame: dict[str, Any]) -> None:
        name = next(n for n, m in doc["components"]["messages"].items() if m["name"] == frame["type"])
        schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        jsonschema.Draft7Validator(schema).validate(frame)
    return check


async def test_real_frames_match_the_documents(gateway: Running) -> None:
    """Frames from a running gateway (SSE and WebSocket, server and reply frames) validate
    against the schemas of the messages the AsyncAPI document names for their type."""
    async with gateway.client() as c:
        served = (await c.get("/asyncapi.json")).json()
        assert served["servers"]["ws"]["host"] == gateway.url.removeprefix("http://")
        assert (await c.get("/openapi.json")).json()["paths"] == json.loads(json.dumps(openapi()["paths"]))
    check = _frame_validator(served)
    key, ingest = gateway.key("business"), gateway.key(scopes=("ingest",))
    seen: set[str] = set()
    with trio.fail_after(20):
        async with gateway.client() as c:
            await push(c, ingest, [quote(-110, event="d1")])
            async with c.stream("GET", f"/v1/odds-drop/{SPORT}", params={"apiKey": key, "heartbeat_s": 1}) as resp:
                events = sse_events(resp)
                for ev in [await next_of(events, "connected"), await next_of(events, "heartbeat")]:
                    check(ev.data)
                    seen.add(ev.data["type"])
                await push(c, ingest, [quote(-140, event="d1")])
                drop = await next_of(events, "odds_drop")
                check(drop.data)
                seen.add("odds_drop")
            url = gateway.url.replace("http", "ws") + f"/ws/odds/{SPORT}?apiKey={key}"
            async with open_websocket_url(url) as ws:
                for message in ({"type": "subscribe", "event_id": "d1"}, {"type": "ping"}, {"type": "unsubscribe"},
                                {"type": "nonsense"}):
                    await ws.send_message(json.dumps(message))
                await push(c, ingest, [quote(-150, event="d1")])
                while "odds_update" not in seen or "error" not in seen or "unsubscribed" not in seen:
                    frame = json.loads(await ws.get_message())
                    check(frame)
                    seen.add(frame["type"])
    assert {"connected", "heartbeat", "odds_drop", "initial_state", "subscribed", "pong", "unsubscribed",
            "odds_update", "error"} <= seen
