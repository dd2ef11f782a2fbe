"""TLS without a proxy: `[server] tls_cert` / `tls_key`, checked before the gateway starts.

Hypercorn serves https and wss itself from the two PEM files (its `certfile`/`keyfile`).
They are loaded here once with the same `ssl` call, so that a missing, unreadable or
mismatched file is one start-up line naming it (a `ConfigError`, exit 2), not a traceback
from inside Hypercorn after the database was opened.
"""

from __future__ import annotations

import ssl

from .config import Config, ConfigError


def tls_files(config: Config) -> tuple[str, str] | None:
    """(certfile, keyfile) when TLS is configured and both load, else None; ConfigError if not."""
    cert, key = config.server.tls_cert, config.server.tls_key
    if not cert:
        return None
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            with open(path, "rb") as f:
                f.read(1)
        except FileNotFoundError:
            raise ConfigError(f"[server] {name}: {path} does not exist") from None
        except PermissionError:
            raise ConfigError(f"[server] {name}: {path} is not readable by this user "
                              "(give the gateway's user read access)") from None
        except OSError as exc:
            raise ConfigError(f"[server] {name}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ConfigError(f"[server] tls_cert/tls_key: {cert} and {key} are not a PEM certificate and its "
                          f"private key ({exc.reason or exc})") from None
    return cert, key
