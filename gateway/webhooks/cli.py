"""`gateway webhooks list|create|delete|test`: the same operations as the API, on the store.

Works while the gateway runs (the worker reads the webhooks table at every pass).
`create` prints the secret alone on the last line of stdout, once.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any

import trio

from ..config import Config
from ..core.filters import ParamError
from ..store import Store, max_seq
from ..universe import Universe
from ..writer import wall_ms
from . import queries as q
from .guard import webhook_client
from .model import FILTER_FIELDS, FORMATS, compile_filters, validate_description, validate_url
from .signing import new_secret
from .worker import send_test


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    hooks = sub.add_parser("webhooks", help="manage webhooks (drops POSTed to your URLs)")
    hs = hooks.add_subparsers(dest="webhooks_command", required=True)
    ls = hs.add_parser("list", parents=[common], help="list webhooks (never their secrets)")
    ls.add_argument("--key", help="only the webhooks of this key (by name)")
    create = hs.add_parser("create", parents=[common], help="create a webhook and print its secret once")
    create.add_argument("--key", required=True, help="the owning key, by name (tier business or above)")
    create.add_argument("--url", required=True)
    create.add_argument("--format", choices=FORMATS, default="json")
    create.add_argument("--description", default="")
    for name in FILTER_FIELDS:
        create.add_argument("--" + name.replace("_", "-"), dest=name, help="as the drop stream's parameter")
    delete = hs.add_parser("delete", parents=[common], help="delete a webhook and its delivery log")
    delete.add_argument("id", type=int)
    test = hs.add_parser("test", parents=[common], help="send a test event now and print the answer")
    test.add_argument("id", type=int)


class _Fail(Exception):
    pass


def run(args: argparse.Namespace, config: Config) -> int:
    store = Store(config.db_path(), readers=1)
    try:
        return _run(args, config, store)
    except _Fail as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except ParamError as exc:
        print(f"gateway: --{exc.param.replace('_', '-')}: {exc.message}", file=sys.stderr)
        return 2
    finally:
        store.close()


def _run(args: argparse.Namespace, config: Config, store: Store) -> int:
    command = args.webhooks_command
    if command == "list":
        names = store.read_sync(q.key_names)
        key_id = _key(store, args.key)[0] if args.key else None
        for h in store.read_sync(partial(q.list_webhooks, key_id=key_id)):
            state = "active" if h.is_active else f"disabled ({h.disabled_reason})"
            print(f"{h.id}\t{names.get(h.key_id, h.key_id)}\t{h.format}\t{h.url}\t{state}\t"
                  f"{json.dumps(h.filters, separators=(',', ':'))}")
        return 0
    if command == "create":
        return _create(args, config, store)
    hook = store.read_sync(partial(q.get_webhook, webhook_id=args.id))
    if hook is None:
        raise _Fail(f"no webhook {args.id}")
    if command == "delete":
        store.write_fn_sync(partial(q.delete_webhook, webhook_id=args.id))
        print(f"deleted webhook {args.id}")
        return 0

    async def send() -> tuple[str, Any]:
        async with webhook_client(block_private=config.webhooks.block_private_addresses) as client:
            return await send_test(store, client, hook)

    did, outcome = trio.run(send)
    state = "delivered" if outcome.ok else f"failed: {outcome.error}"
    print(f"test delivery {did} to {hook.url}: {state} ({outcome.duration_ms:.0f} ms)")
    return 0 if outcome.ok else 1


def _key(store: Store, name: str) -> tuple[int, str]:
    found = store.read_sync(partial(q.key_named, name=name))
    if found is None:
        raise _Fail(f"no active key named {name!r}")
    return found


def _create(args: argparse.Namespace, config: Config, store: Store) -> int:
    key_id, tier = _key(store, args.key)
    allowed = [name for name, t in config.tiers.items() if t.odds_streams]
    if tier not in allowed:
        raise _Fail(f"webhooks need a key of tier {' or '.join(allowed)}; {args.key!r} is {tier}")
    universe = Universe.from_config(config)
    store.read_sync(universe.load)
    fields = {name: getattr(args, name) for name in FILTER_FIELDS if getattr(args, name) is not None}
    filters, _, _ = compile_filters(fields, universe.catalog())
    url = validate_url(args.url, block_private=config.webhooks.block_private_addresses)
    description = validate_description(args.description)
    hook = store.write_fn_sync(lambda conn: q.insert_webhook(
        conn, key_id=key_id, url=url, description=description, fmt=args.format, filters=filters,
        secret=new_secret(), after_seq=max_seq(conn), now=wall_ms()))
    assert hook is not None
    print(f"created webhook {hook.id} for key {args.key!r} -> {hook.url}; the secret is shown only once:",
          file=sys.stderr)
    print(hook.secret)
    return 0
