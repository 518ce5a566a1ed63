"""The nginx site in docs/operations.md, run for real (Debian's nginx) in front of boshcm.

The site is taken from the document itself, so the document stays true: a BOSH request is held through the
proxy for the whole `wait`, a WebSocket upgrade passes, boshcm believes the forwarded scheme (PLAIN is
offered because the client came over https) and refuses a page from an origin it does not allow.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from lxml import etree

from boshcm.app import Server
from tests.integration.bosh_client import BoshClient
from tests.interop.prosody import free_port
from tests.servers import running_server

OPERATIONS = Path(__file__).parents[2] / "docs" / "operations.md"
PAGE_ORIGIN = "https://quiz.example.org"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


def site_from_the_docs(*, listen: int, upstream: int, cert: Path, key: Path) -> str:
    site = re.search(r"```nginx\n(.*?)```", OPERATIONS.read_text(), re.S)
    assert site is not None, "docs/operations.md has no nginx site"
    text = site.group(1)
    for documented, here in ((r"listen 443 ssl", f"listen 127.0.0.1:{listen} ssl"),
                             (r"server 127\.0\.0\.1:5280;", f"server 127.0.0.1:{upstream};"),
                             (r"ssl_certificate +\S+;", f"ssl_certificate {cert};"),
                             (r"ssl_certificate_key +\S+;", f"ssl_certificate_key {key};")):
        text, count = re.subn(documented, here, text)
        assert count == 1, documented
    return text


@pytest.fixture
def nginx_port(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """(nginx's https port, the port boshcm must listen on)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=quiz.example.org"], check=True, capture_output=True)
    listen, upstream = free_port(), free_port()
    temp = "".join(f" {kind}_temp_path {tmp_path / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                       "uwsgi", "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"worker_processes 1; pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'}; daemon off;\n"
        f"events {{ worker_connections 64; }}\nhttp {{ access_log off;{temp}\n"
        + site_from_the_docs(listen=listen, upstream=upstream, cert=cert, key=key) + "}\n")
    nginx = subprocess.Popen(["nginx", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert nginx.poll() is None, nginx.stderr.read() if nginx.stderr else "nginx ended"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", listen)) == 0:
                    break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield listen, upstream
    finally:
        nginx.terminate()
        nginx.wait(10)


@pytest.fixture
async def behind_nginx(tmp_path: Path, nginx_port: tuple[int, int]) -> AsyncIterator[tuple[Server, int]]:
    listen, upstream = nginx_port
    async with running_server(tmp_path, {"http.listen": f"127.0.0.1:{upstream}",
                                         "http.trusted_proxies": ["127.0.0.1/32"],
                                         "http.cors_origins": [PAGE_ORIGIN]}) as server:
        yield server, listen


async def test_the_documented_nginx_site_carries_bosh_and_websocket(behind_nginx: tuple[Server, int]) -> None:
    _, port = behind_nginx
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as http:
        bosh = BoshClient(http, f"https://127.0.0.1:{port}/http-bind", wait=2)
        await bosh.login("alice", "alice-secret")
        started = time.monotonic()
        empty = await bosh.post(bosh.body())
        # Held for the whole wait: nginx neither buffered nor timed out the long poll.
        assert len(empty) == 0 and time.monotonic() - started > 1.5

        url = f"wss://127.0.0.1:{port}/xmpp-websocket"
        async with http.ws_connect(url, protocols=("xmpp",), headers={"Origin": PAGE_ORIGIN}) as ws:
            await ws.send_str("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>")
            await ws.receive(timeout=5)
            features = etree.fromstring((await ws.receive(timeout=5)).data.encode())
            # The client came over https: boshcm believes nginx's X-Forwarded-Proto and offers PLAIN.
            assert "PLAIN" in [node.text for node in features.iter(f"{{{NS_SASL}}}mechanism")]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, protocols=("xmpp",), headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
