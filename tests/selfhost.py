"""Helpers for the self-hosting tests: certificates from trustme, and nginx / Caddy started
as this test's own processes with the shipped `deploy/` files rendered into tmp_path
(ephemeral ports, no root paths, pid and log files in tmp_path)."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
CADDY = shutil.which("caddy")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Certs:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""

    ca_pem: Path
    cert_pem: Path  # the chain: server certificate, then the CA's
    key_pem: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))

    def chromium_args(self) -> list[str]:
        """Chromium trusts the server certificate by its public key (Playwright's
        ignore_https_errors does not cover wss:// in Chromium)."""
        import base64
        import hashlib

        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        cert = x509.load_pem_x509_certificates(self.cert_pem.read_bytes())[0]
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        return [f"--ignore-certificate-errors-spki-list={base64.b64encode(hashlib.sha256(spki).digest()).decode()}"]


def make_certs(directory: Path) -> Certs:
    trustme = pytest.importorskip("trustme", reason="trustme is in the test extra: pip install -e '.[test]'")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    directory.mkdir(parents=True, exist_ok=True)
    certs = Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(certs.ca_pem))
    server.private_key_pem.write_to_path(str(certs.key_pem))
    with certs.cert_pem.open("wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    return certs


def substitute(text: str, replacements: dict[str, str]) -> str:
    """Replace each exact piece of the shipped file; a piece that is missing fails the test
    (the deploy file changed: the test must follow it)."""
    for old, new in replacements.items():
        assert old in text, f"the deploy file no longer contains {old!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Proxy:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def render_nginx(tmp: Path, *, port: int, upstream_port: int, certs: Certs, read_timeout: str) -> Path:
    site = substitute((DEPLOY / "nginx.conf").read_text(), {
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream_port};",
        "    listen 80;\n    listen [::]:80;": f"    listen 127.0.0.1:{free_port()};",
        "    listen 443 ssl http2;": f"    listen 127.0.0.1:{port} ssl http2;",
        "    listen [::]:443 ssl http2;\n": "",
        "/etc/letsencrypt/live/odds.example.com/fullchain.pem": str(certs.cert_pem),
        "/etc/letsencrypt/live/odds.example.com/privkey.pem": str(certs.key_pem),
        "proxy_read_timeout 1h;": f"proxy_read_timeout {read_timeout};",
    })
    (tmp / "gateway.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {tmp}/{kind}_temp;" for kind in ("client_body", "proxy", "fastcgi",
                                                                              "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach tmp_path (0700) for body buffers
    main = (f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log info;\n"
            f"events {{ worker_connections 512; }}\n"
            f"http {{\n    access_log {tmp}/access.log;\n{temp}\n    include {tmp}/gateway.conf;\n}}\n")
    (tmp / "nginx.conf").write_text(main)
    return tmp / "nginx.conf"


def render_caddy(tmp: Path, *, port: int, upstream_port: int, certs: Certs, read_timeout: str) -> Path:
    site = substitute((DEPLOY / "Caddyfile").read_text(), {
        "odds.example.com {": f"https://127.0.0.1:{port} {{\n\tbind 127.0.0.1\n\ttls {certs.cert_pem} {certs.key_pem}",
        "reverse_proxy 127.0.0.1:8080 {": f"reverse_proxy 127.0.0.1:{upstream_port} {{",
        "read_timeout 1h": f"read_timeout {read_timeout}",
    })
    options = (f"{{\n\tadmin off\n\tauto_https disable_redirects\n\tskip_install_trust\n"
               f"\thttp_port {free_port()}\n\thttps_port {port}\n\tstorage file_system {tmp}/caddy-data\n}}\n\n")
    (tmp / "Caddyfile").write_text(options + site)
    return tmp / "Caddyfile"


def start_proxy(name: str, tmp: Path, *, upstream_port: int, certs: Certs, read_timeout: str = "2s") -> Proxy:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / f"{name}.log"
    env = dict(os.environ)
    if name == "nginx":
        assert NGINX is not None
        conf = render_nginx(tmp, port=port, upstream_port=upstream_port, certs=certs, read_timeout=read_timeout)
        cmd = [NGINX, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf), "-g", "daemon off;"]
        log = tmp / "error.log"
    else:
        assert CADDY is not None
        conf = render_caddy(tmp, port=port, upstream_port=upstream_port, certs=certs, read_timeout=read_timeout)
        cmd = [CADDY, "run", "--config", str(conf), "--adapter", "caddyfile", "--pidfile", str(tmp / "caddy.pid")]
        env.update(HOME=str(tmp), XDG_DATA_HOME=str(tmp / "xdg-data"), XDG_CONFIG_HOME=str(tmp / "xdg-config"))
    with (tmp / f"{name}.out").open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    proxy = Proxy(name, port, proc, log if name == "nginx" else tmp / f"{name}.out")
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}: {(tmp / f'{name}.out').read_text()}"
                                 f"{proxy.logs()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proxy
        except OSError:
            if time.monotonic() > deadline:
                proxy.stop()
                raise AssertionError(f"{name} did not listen on {port} within 15 s: {proxy.logs()}") from None
            time.sleep(0.05)


def needs(binary: str | None, name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(binary is None, reason=f"{name} is not installed (apt-get install {name}; "
                              f".ci/selfhost-deps does it in CI)")
