"""pytest plugin (entry point `gateway`): the `gateway_server` fixture.

It only defines fixtures, so nothing starts unless a test asks for one. The fixture runs a
full gateway in a background thread, so it works in plain synchronous tests, asyncio or
anyio suites and Trio suites alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import SyncGatewayHandle, run_gateway


@pytest.fixture
def gateway_server() -> Iterator[SyncGatewayHandle]:
    """A fresh gateway per test: `.base_url`, `.ws_url`, `.key`, `.move(...)`, `.push_quotes(...)`."""
    with run_gateway() as gw:
        yield gw
