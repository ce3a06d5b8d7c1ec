"""Exec, attach and port-forward over WebSocket for every client, not only kubectl.

The official Python client's ``stream()`` (``v5.channel.k8s.io``, translated to SPDY by
the API server) and ``portforward()`` (``v4.channel.k8s.io``, relayed to the kubelet),
and a raw ``websocket-client`` speaking the other subprotocols, against the pod of
:mod:`tests.kubelet.stream_fixtures` -- through the API server and at the kubelet itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
import websocket
from kubernetes import client, config
from kubernetes.stream import portforward, stream
from kubernetes.stream.ws_client import PortForward, WSClient

from tests.integration.conftest import Server
from tests.kubelet.stream_fixtures import ECHO_PORT, WEB_PORT, Env

pytestmark = pytest.mark.e2e

SUCCESS = {"metadata": {}, "status": "Success"}
#: a port nobody in the pod listens on
CLOSED_PORT = 1234


def _api(kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def _configuration(kubeconfig: Path) -> client.Configuration:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return cfg


def _read_until(resp: WSClient, channel: int, want: str, attempts: int = 150) -> str:
    """What ``channel`` carried until ``want`` showed up (or the session ended)."""
    out = ""
    for _ in range(attempts):
        resp.update(timeout=0.2)
        out += resp.read_channel(channel)
        if want in out or not resp.is_open():
            break
    return out


# --------------------------------------------------------------------------- Python client: exec


def _exec_then_close_stdin(kubeconfig: Path, namespace: str, pod: str) -> tuple[str, str, int]:
    resp = stream(
        _api(kubeconfig).connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container="main",
        command=["sh", "-c", "cat; echo stdin-closed"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    try:
        resp.write_stdin("round trip\n")
        echoed = _read_until(resp, 1, "round trip\n")
        resp.close_channel(0)  # v5: stdin's EOF, so cat ends
        rest = _read_until(resp, 1, "stdin-closed\n")
        resp.run_forever(timeout=10)
        return echoed, rest, resp.returncode
    finally:
        resp.close()


async def test_python_client_exec_round_trips_and_closes_stdin(env: Env) -> None:
    async with asyncio.timeout(60):
        echoed, rest, code = await asyncio.to_thread(
            _exec_then_close_stdin, env.kubeconfig, env.namespace, env.pod
        )
    assert echoed == "round trip\n"
    assert rest == "stdin-closed\n"
    assert code == 0


def _terminal_size_after_resize(kubeconfig: Path, namespace: str, pod: str) -> str:
    resp = stream(
        _api(kubeconfig).connect_get_namespaced_pod_exec,
        pod,
        namespace,
        container="main",
        command=["sh", "-c", "while read line; do stty size; done"],
        stdin=True,
        stdout=True,
        tty=True,
        _preload_content=False,
    )
    try:
        resp.write_channel(4, json.dumps({"Width": 123, "Height": 45}))
        out = ""
        # the resize travels next to stdin, not in order with it: ask until it has landed
        for _ in range(30):
            resp.write_stdin("\n")
            out += _read_until(resp, 1, "45 123", attempts=5)
            if "45 123" in out:
                break
        return out
    finally:
        resp.close()


async def test_python_client_resizes_the_terminal(env: Env) -> None:
    async with asyncio.timeout(60):
        out = await asyncio.to_thread(
            _terminal_size_after_resize, env.kubeconfig, env.namespace, env.pod
        )
    assert "45 123\r\n" in out


# ------------------------------------------------------------- Python client: port-forward


def _forward(kubeconfig: Path, namespace: str, pod: str, ports: str) -> PortForward:
    pf: PortForward = portforward(
        _api(kubeconfig).connect_get_namespaced_pod_portforward, pod, namespace, ports=ports
    )
    return pf


#: how long to wait before asking again while a server in the pod is still starting
RETRY_DELAY = 0.2


def _receive_all(sock: Any) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _receive_until(sock: Any, suffix: bytes) -> bytes:
    """What ``sock`` carries until it ends with ``suffix`` (a port's socket ends only when
    every port of the session has ended)."""
    data = b""
    while not data.endswith(suffix) and (chunk := sock.recv(65536)):
        data += chunk
    return data


def _http_get_over_port_forward(kubeconfig: Path, namespace: str, pod: str) -> tuple[bytes, Any]:
    """GET / from the pod's httpd through ``portforward()``; retried while httpd starts
    (the error channel then says the connection was refused)."""
    for _ in range(50):
        pf = _forward(kubeconfig, namespace, pod, str(WEB_PORT))
        sock = pf.socket(WEB_PORT)
        sock.settimeout(20)
        sock.sendall(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        page = _receive_all(sock)
        sock.close()
        if page:
            return page, pf.error(WEB_PORT)
        time.sleep(RETRY_DELAY)
    raise AssertionError(f"httpd never answered: {pf.error(WEB_PORT)}")


async def test_python_client_port_forward_to_httpd(env: Env) -> None:
    async with asyncio.timeout(90):
        page, error = await asyncio.to_thread(
            _http_get_over_port_forward, env.kubeconfig, env.namespace, env.pod
        )
    assert page.startswith(b"HTTP/1.1 200 OK\r\n")  # busybox httpd answers in 1.1
    assert page.endswith(b"\r\n\r\nhello-from-pod\n")
    assert error is None


def _echo_both_ways(kubeconfig: Path, namespace: str, pod: str) -> tuple[bytes, bytes, bytes]:
    """Random bytes to the pod's echo server and back, and an HTTP GET on a second port
    of the same session."""
    payload = os.urandom(200_000)
    for _ in range(50):
        pf = _forward(kubeconfig, namespace, pod, f"{ECHO_PORT},{WEB_PORT}")
        echo, web = pf.socket(ECHO_PORT), pf.socket(WEB_PORT)
        for sock in (echo, web):
            sock.settimeout(20)
        web.sendall(b"GET / HTTP/1.0\r\n\r\n")
        echo.sendall(payload)
        back = b""
        while len(back) < len(payload) and (chunk := echo.recv(65536)):
            back += chunk
        page = _receive_until(web, b"hello-from-pod\n")
        pf.close()
        if back:
            return payload, back, page
        time.sleep(RETRY_DELAY)
    raise AssertionError(f"nc never answered: {pf.error(ECHO_PORT)}")


async def test_python_client_port_forward_carries_bytes_both_ways(env: Env) -> None:
    async with asyncio.timeout(90):
        payload, back, page = await asyncio.to_thread(
            _echo_both_ways, env.kubeconfig, env.namespace, env.pod
        )
    assert back == payload
    assert page.endswith(b"hello-from-pod\n")


def _forward_to_nobody(kubeconfig: Path, namespace: str, pod: str) -> tuple[bytes, str | None]:
    pf = _forward(kubeconfig, namespace, pod, str(CLOSED_PORT))
    sock = pf.socket(CLOSED_PORT)
    sock.settimeout(20)
    data = _receive_all(sock)  # the error closes the port's socket
    error: str | None = pf.error(CLOSED_PORT)
    return data, error


async def _sandbox_id(env: Env) -> str:
    (sandbox,) = await env.cri.list_pod_sandbox(
        labels={"io.kubernetes.pod.name": env.pod, "io.kubernetes.pod.namespace": env.namespace}
    )
    return str(sandbox.id)


async def test_port_forward_to_a_closed_port_reports_on_the_error_channel(env: Env) -> None:
    async with asyncio.timeout(60):
        data, error = await asyncio.to_thread(
            _forward_to_nobody, env.kubeconfig, env.namespace, env.pod
        )
        sandbox = await _sandbox_id(env)
    assert data == b""
    assert error is not None
    # upstream's kubelet text (containerd's stream server knows the sandbox, not the uid)
    assert error.startswith(f"error forwarding port {CLOSED_PORT} to pod {sandbox}, uid : ")
    assert f"dial tcp4 127.0.0.1:{CLOSED_PORT}: connect: connection refused" in error


# --------------------------------------------------------------------------- raw WebSocket clients


@contextmanager
def _raw_websocket(
    url: str, protocols: list[str], sslopt: dict[str, Any], header: list[str] | None = None
) -> Iterator[websocket.WebSocket]:
    ws = websocket.WebSocket(sslopt=sslopt)
    ws.connect(url, subprotocols=protocols or None, header=header or [], timeout=20)
    try:
        yield ws
    finally:
        ws.close()


def _api_websocket(env: Env, path: str, query: list[tuple[str, str]], protocols: list[str]) -> Any:
    cfg = _configuration(env.kubeconfig)
    sslopt: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": cfg.ssl_ca_cert}
    if cfg.cert_file:
        sslopt |= {"certfile": cfg.cert_file, "keyfile": cfg.key_file}
    header = [f"Authorization: {cfg.api_key['authorization']}"] if cfg.api_key else []
    base = cfg.host.replace("https://", "wss://")
    url = f"{base}/api/v1/namespaces/{env.namespace}/pods/{env.pod}/{path}?{urlencode(query)}"
    return _raw_websocket(url, protocols, sslopt, header)


def _frames(ws: websocket.WebSocket) -> list[tuple[int, bytes]]:
    """Every data frame until the server closes: (opcode, payload)."""
    frames: list[tuple[int, bytes]] = []
    while True:
        opcode, data = ws.recv_data(control_frame=False)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return frames
        frames.append((opcode, data))


def _base64_exec(env: Env, protocol: str) -> list[tuple[int, bytes]]:
    query = [("container", "main"), ("command", "head"), ("command", "-n1")]
    query += [("stdin", "true"), ("stdout", "true"), ("stderr", "true")]
    with _api_websocket(env, "exec", query, [protocol]) as ws:
        assert ws.getsubprotocol() == protocol
        # stdin in a TEXT frame, then in a BINARY one: either frame type is accepted
        ws.send("0" + base64.b64encode(b"line ").decode())
        ws.send_binary(b"0" + base64.b64encode(b"one\nline two\n"))
        return _frames(ws)


def _decode_base64_frames(frames: list[tuple[int, bytes]]) -> dict[int, bytes]:
    """Per channel, what the frames carried; every frame must be TEXT, a digit first."""
    channels: dict[int, bytes] = {}
    for opcode, data in frames:
        assert opcode == websocket.ABNF.OPCODE_TEXT
        channel = int(data[:1].decode())
        channels[channel] = channels.get(channel, b"") + base64.b64decode(data[1:])
    return channels


@pytest.mark.parametrize("protocol", ["v4.base64.channel.k8s.io", "base64.channel.k8s.io"])
async def test_raw_client_exec_over_base64_channels(env: Env, protocol: str) -> None:
    async with asyncio.timeout(60):
        frames = await asyncio.to_thread(_base64_exec, env, protocol)
    channels = _decode_base64_frames(frames)
    assert channels[1] == b"line one\n"
    assert channels.get(2, b"") == b""
    if protocol.startswith("v4."):  # v4: the exit status as a Status on the error channel
        assert orjson.loads(channels[3]) == SUCCESS
    else:  # the first version says nothing on success
        assert channels.get(3, b"") == b""


def _base64_resize(env: Env) -> str:
    """A terminal resized over channel 4 (JSON, base64 like every frame), then asked its
    size until the resize has landed (it travels next to stdin, not in order with it)."""
    query = [("container", "main"), ("command", "sh"), ("command", "-c")]
    query += [("command", "while read line; do stty size; done")]
    query += [("stdin", "true"), ("stdout", "true"), ("tty", "true")]
    with _api_websocket(env, "exec", query, ["v4.base64.channel.k8s.io"]) as ws:
        size = json.dumps({"Width": 77, "Height": 22}).encode()
        ws.send("4" + base64.b64encode(size).decode())
        out = b""
        for _ in range(30):
            ws.send("0" + base64.b64encode(b"\n").decode())
            ws.settimeout(0.5)
            with contextlib.suppress(websocket.WebSocketTimeoutException):
                while b"22 77" not in out:
                    _, data = ws.recv_data(control_frame=False)
                    if data[:1] == b"1":
                        out += base64.b64decode(data[1:])
            if b"22 77" in out:
                break
        return out.decode()


async def test_raw_client_resizes_over_base64_channels(env: Env) -> None:
    async with asyncio.timeout(60):
        out = await asyncio.to_thread(_base64_resize, env)
    assert "22 77\r\n" in out


def _binary_attach(env: Env) -> list[tuple[int, bytes]]:
    query = [("container", "main"), ("stdout", "true")]
    with _api_websocket(env, "attach", query, ["v4.channel.k8s.io"]) as ws:
        assert ws.getsubprotocol() == "v4.channel.k8s.io"
        frames: list[tuple[int, bytes]] = []
        while b"tick\n" not in b"".join(d[1:] for _, d in frames):
            frames.append(ws.recv_data(control_frame=False))
        return frames


async def test_raw_client_attach_over_v4_channels(env: Env) -> None:
    async with asyncio.timeout(60):
        frames = await asyncio.to_thread(_binary_attach, env)
    assert {opcode for opcode, _ in frames} == {websocket.ABNF.OPCODE_BINARY}
    assert {data[:1] for _, data in frames} == {b"\x01"}  # stdout only


def _raw_port_forward(env: Env, protocol: str) -> dict[int, list[bytes]]:
    """Ports 9000 (echo) and 1234 (closed) in one session; returns what each channel
    carried, frame by frame, until the echo came back and the error arrived."""
    query = [("ports", f"{ECHO_PORT},{CLOSED_PORT}")]
    base64_framing = "base64" in protocol
    with _api_websocket(env, "portforward", query, [protocol] if protocol else []) as ws:
        channels: dict[int, list[bytes]] = {}

        def received(channel: int) -> bytes:
            return b"".join(channels.get(channel, [])[1:])  # after the port-number frame

        sent = False
        while b"ping" not in received(0) or not received(3):
            opcode, data = ws.recv_data(control_frame=False)
            if base64_framing:
                assert opcode == websocket.ABNF.OPCODE_TEXT
                channel, payload = int(data[:1].decode()), base64.b64decode(data[1:])
            else:
                assert opcode == websocket.ABNF.OPCODE_BINARY
                channel, payload = data[0], data[1:]
            channels.setdefault(channel, []).append(payload)
            if not sent and len(channels.get(0, [])) == 1:  # the data channel is open
                if base64_framing:
                    ws.send("0" + base64.b64encode(b"ping").decode())
                else:
                    ws.send_binary(b"\x00ping")
                sent = True
        return channels


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io", ""])
async def test_raw_client_port_forward(env: Env, protocol: str) -> None:
    async with asyncio.timeout(60):
        channels = await asyncio.to_thread(_raw_port_forward, env, protocol)
        sandbox = await _sandbox_id(env)
    # two channels per port, each opened by its port as a little-endian uint16
    for channel, port in ((0, ECHO_PORT), (1, ECHO_PORT), (2, CLOSED_PORT), (3, CLOSED_PORT)):
        assert channels[channel][0] == port.to_bytes(2, "little")
    assert b"".join(channels[0][1:]) == b"ping"
    assert channels[1][1:] == []  # no error on the echo port
    error = b"".join(channels[3][1:]).decode()
    assert error.startswith(f"error forwarding port {CLOSED_PORT} to pod {sandbox}, uid : ")


def _refused(env: Env, path: str, query: list[tuple[str, str]]) -> tuple[int, bytes]:
    with (
        pytest.raises(websocket.WebSocketBadStatusException) as caught,
        _api_websocket(env, path, query, ["v4.channel.k8s.io"]),
    ):
        pass
    return caught.value.status_code, caught.value.resp_body or b""


async def test_port_forward_bad_ports(env: Env) -> None:
    async with asyncio.timeout(60):
        # the API server reads the ports as upstream's PodPortForwardOptions conversion does
        code, body = await asyncio.to_thread(_refused, env, "portforward", [("ports", "80,x")])
        assert code == 400
        assert orjson.loads(body)["message"] == (
            'cannot convert to []int32: strconv.ParseUint: parsing "x": invalid syntax'
        )
        code, body = await asyncio.to_thread(_refused, env, "portforward", [("ports", "65536")])
        assert code == 400
        assert b'parsing \\"65536\\": value out of range' in body
        # no ports at all: the kubelet's refusal, passed on as it wrote it
        code, body = await asyncio.to_thread(_refused, env, "portforward", [])
        assert (code, body) == (400, b'query parameter "port" is required')


# --------------------------------------------------------------------------- at the kubelet


def _kubelet_websocket(
    env: Env, server: Server, path: str, query: list[tuple[str, str]], protocols: list[str]
) -> Any:
    tls = server.data_dir / "server" / "tls"
    sslopt = {
        "cert_reqs": ssl.CERT_NONE,
        "certfile": str(tls / "apiserver-kubelet-client.crt"),
        "keyfile": str(tls / "apiserver-kubelet-client.key"),
    }
    url = f"wss://127.0.0.1:{env.kubelet.port}{path}?{urlencode(query)}"
    return _raw_websocket(url, protocols, sslopt)


def _kubelet_port_forward(env: Env, server: Server) -> list[bytes]:
    path = f"/portForward/{env.namespace}/{env.pod}"
    query = [("port", str(ECHO_PORT))]
    with _kubelet_websocket(env, server, path, query, ["v4.channel.k8s.io"]) as ws:
        frames = [ws.recv_data(control_frame=False)[1] for _ in range(2)]
        ws.send_binary(b"\x00hello kubelet")
        while b"hello kubelet" not in b"".join(frames[2:]):
            frames.append(ws.recv_data(control_frame=False)[1])
        return frames


def _kubelet_base64_exec(env: Env, server: Server) -> list[tuple[int, bytes]]:
    path = f"/exec/{env.namespace}/{env.pod}/main"
    query = [("command", "head"), ("command", "-n1"), ("input", "1"), ("output", "1")]
    with _kubelet_websocket(env, server, path, query, ["v4.base64.channel.k8s.io"]) as ws:
        ws.send("0" + base64.b64encode(b"to the kubelet\n").decode())
        return _frames(ws)


def _kubelet_refusal(env: Env, server: Server, port: str) -> tuple[int, bytes]:
    path = f"/portForward/{env.namespace}/{env.pod}"
    with (
        pytest.raises(websocket.WebSocketBadStatusException) as caught,
        _kubelet_websocket(env, server, path, [("port", port)], ["v4.channel.k8s.io"]),
    ):
        pass
    return caught.value.status_code, caught.value.resp_body or b""


async def test_kubelet_serves_websocket_streams(env: Env, cm_server: Server) -> None:
    async with asyncio.timeout(60):
        frames = await asyncio.to_thread(_kubelet_port_forward, env, cm_server)
        echo_port = ECHO_PORT.to_bytes(2, "little")
        assert frames[:2] == [b"\x00" + echo_port, b"\x01" + echo_port]
        assert b"".join(f[1:] for f in frames[2:]) == b"hello kubelet"

        channels = _decode_base64_frames(
            await asyncio.to_thread(_kubelet_base64_exec, env, cm_server)
        )
        assert channels[1] == b"to the kubelet\n"
        assert orjson.loads(channels[3]) == SUCCESS

        # the ports are checked before the runtime is asked, with upstream's texts
        for port, text in (
            ("", 'query parameter "port" cannot be empty'),
            ("0", 'port "0" must be > 0'),
            ("80,abc", 'unable to parse "80,abc" as a port: '
                       'strconv.ParseUint: parsing "abc": invalid syntax'),
        ):  # fmt: skip
            code, body = await asyncio.to_thread(_kubelet_refusal, env, cm_server, port)
            assert (code, body.decode()) == (400, text)
