"""Requests to nginx on loopback as ``curl --resolve`` sends them: the Host header, and
over TLS the host as SNI; the certificate a name gets."""

from __future__ import annotations

import http.client
import socket
import ssl

from cryptography import x509
from cryptography.x509.oid import NameOID


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to an address with ``server_name`` as SNI."""

    def __init__(self, address: str, port: int, server_name: str) -> None:
        super().__init__(address, port, context=_insecure(), timeout=10)
        self.server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self.server_name
        )


def get(host: str, target: str, port: int, https: bool = False) -> tuple[int, str, str]:
    """Status, body and Location header of ``GET target`` with ``Host: host`` to
    127.0.0.1:``port`` (a new connection each time)."""
    conn: http.client.HTTPConnection
    if https:
        conn = _SNIConnection("127.0.0.1", port, host)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", target, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), resp.getheader("Location") or ""
    finally:
        conn.close()


def served_cn(port: int, server_name: str) -> str:
    """The common name of the certificate 127.0.0.1:``port`` presents for SNI
    ``server_name``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        _insecure().wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cn = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cn[0].value)
