"""Container probes: the checks the kubelet runs and the thresholds it applies to them.

A pod's ``livenessProbe``, ``readinessProbe`` and ``startupProbe`` each name one handler
(an HTTP GET, a TCP connect, a command run in the container, or a gRPC health check).
One run of a handler gives a :class:`ProbeResult`. A :class:`ProbeWorker` runs a handler
every ``periodSeconds`` and only changes its verdict after ``failureThreshold``
consecutive failures or ``successThreshold`` consecutive successes, which is how the
kubelet decides when a container is ready, when it has started and when to restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import grpc

USER_AGENT = "kube-probe/1.32"

ProbeKind = Literal["liveness", "readiness", "startup"]


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe run; ``message`` says why it failed (or what it printed)."""

    result: Literal["success", "failure"]
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.result == "success"


def _success(message: str = "") -> ProbeResult:
    return ProbeResult("success", message)


def _failure(message: str) -> ProbeResult:
    return ProbeResult("failure", message)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(host: str, port: int, err: BaseException) -> str:
    """Describe a failed connect the way Go's net package does, as users know it."""
    where = f"dial tcp {_hostport(host, port)}"
    if isinstance(err, TimeoutError):
        return f"{where}: i/o timeout"
    if isinstance(err, ConnectionRefusedError):
        return f"{where}: connect: connection refused"
    if isinstance(err, OSError) and err.strerror:
        return f"{where}: connect: {err.strerror.lower()}"
    return f"{where}: {err}"


async def probe_http(
    host: str,
    port: int,
    path: str = "/",
    scheme: str = "HTTP",
    headers: Sequence[Mapping[str, str]] = (),
    timeout: float = 1.0,  # noqa: ASYNC109 (a timeout is a probe failure, not an error)
) -> ProbeResult:
    """GET the URL; a status from 200 to 399 is success (redirects are not followed)."""
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme.lower()}://{_hostport(host, port)}{path}"
    sent = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for header in headers:
        sent[header["name"]] = header["value"]
    # Like the kubelet, HTTPS probes do not verify the server's certificate.
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url, headers=sent, allow_redirects=False, ssl=tls) as response,
        ):
            body = (await response.content.read(10 * 1024)).decode(errors="replace")
            status = response.status
    except aiohttp.ClientConnectorError as err:
        return _failure(f'Get "{url}": {_dial_error(host, port, err.os_error)}')
    except TimeoutError:
        return _failure(
            f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting '
            "headers)"
        )
    except (aiohttp.ClientError, OSError) as err:
        return _failure(f'Get "{url}": {err}')
    if 200 <= status < 400:
        return _success(body)
    return _failure(f"HTTP probe failed with statuscode: {status}")


async def probe_tcp(host: str, port: int, timeout: float = 1.0) -> ProbeResult:  # noqa: ASYNC109
    """Open (and close) a TCP connection; being able to connect is success."""
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except (TimeoutError, OSError) as err:
        return _failure(_dial_error(host, port, err))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return _success()


ExecRunner = Callable[[list[str], float], Awaitable[tuple[int, bytes, bytes]]]


async def probe_exec(
    run: ExecRunner,
    command: list[str],
    timeout: float = 1.0,  # noqa: ASYNC109
) -> ProbeResult:
    """Run ``command`` in the container through ``run``; exit code 0 is success."""
    try:
        async with asyncio.timeout(timeout):
            code, stdout, stderr = await run(command, timeout)
    except TimeoutError:
        return _failure("command timed out")
    output = (stdout + stderr).decode(errors="replace")
    if code == 0:
        return _success(output)
    return _failure(output or f"command {command!r} exited with code {code}")


# grpc.health.v1 by hand: HealthCheckRequest{string service = 1} and
# HealthCheckResponse{ServingStatus status = 1}, so no generated code is needed.
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def encode_health_request(service: str) -> bytes:
    """Serialize a HealthCheckRequest (empty service is the default encoding: no bytes)."""
    if not service:
        return b""
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw


def decode_health_response(data: bytes) -> int:
    """Return the ``status`` field of a HealthCheckResponse (0, UNKNOWN, when absent)."""
    status, pos = 0, 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if field == 1:
                status = value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return status


def encode_health_response(status: int) -> bytes:
    """Serialize a HealthCheckResponse; used by servers in tests and simulations."""
    return b"\x08" + _varint(status) if status else b""


def decode_health_request(data: bytes) -> str:
    """Return the ``service`` field of a HealthCheckRequest."""
    pos = 0
    service = ""
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        if key & 7 != 2:
            _, pos = _read_varint(data, pos)
            continue
        length, pos = _read_varint(data, pos)
        if key >> 3 == 1:
            service = data[pos : pos + length].decode()
        pos += length
    return service


async def probe_grpc(
    host: str,
    port: int,
    service: str = "",
    timeout: float = 1.0,  # noqa: ASYNC109
) -> ProbeResult:
    """Call grpc.health.v1.Health/Check; a SERVING answer is success."""
    target = _hostport(host, port)
    async with grpc.aio.insecure_channel(target) as channel:
        check = channel.unary_unary(HEALTH_CHECK_METHOD)
        try:
            reply: bytes = await check(encode_health_request(service), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return _failure(f"timeout: health rpc did not complete within {timeout:g}s")
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                return _failure(
                    f"failed to connect service {target!r} within {timeout:g}s: {err.details()}"
                )
            return _failure(f"health rpc probe failed: {err.code().name}: {err.details()}")
    try:
        status = decode_health_response(reply)
    except ValueError as err:
        return _failure(f"health rpc probe failed: bad response: {err}")
    if status == 1:
        return _success()
    name = SERVING_STATUS.get(status, str(status))
    return _failure(f'service unhealthy (responded with "{name}")')


class ProbeWorker:
    """Runs one probe of one container periodically and reports thresholded verdicts.

    ``value`` is the current verdict (ready / alive / started). It starts as the kubelet's
    does: a container is alive until proven otherwise, but neither ready nor started.
    ``on_result`` is called with the new verdict each time it changes.
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        run_once: Callable[[], Awaitable[ProbeResult]],
        kind: ProbeKind,
        on_result: Callable[[bool], None],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.kind = kind
        self.initial_delay = float(spec.get("initialDelaySeconds") or 0)
        self.period = float(spec.get("periodSeconds") or 10)
        self.timeout = float(spec.get("timeoutSeconds") or 1)
        self.success_threshold = int(spec.get("successThreshold") or 1)
        self.failure_threshold = int(spec.get("failureThreshold") or 3)
        self.value = kind == "liveness"
        self.last: ProbeResult | None = None
        self._run_once = run_once
        self._on_result = on_result
        self._sleep = sleep
        self._last_ok: bool | None = None
        self._run = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def observe(self, result: ProbeResult | bool) -> bool | None:
        """Count one probe result; return the new verdict if it changed, else None."""
        ok = result.ok if isinstance(result, ProbeResult) else result
        if ok == self._last_ok:
            self._run += 1
        else:
            self._last_ok, self._run = ok, 1
        needed = self.success_threshold if ok else self.failure_threshold
        if self._run < needed or ok == self.value:
            return None
        self.value = ok
        return ok

    async def probe_once(self) -> bool | None:
        """Run the handler once, apply thresholds and notify a change."""
        try:
            async with asyncio.timeout(self.timeout + 1):
                result = await self._run_once()
        except TimeoutError:
            result = _failure("probe timed out")
        except Exception as err:  # a broken handler is a failed probe, not a dead worker
            result = _failure(f"probe error: {err}")
        self.last = result
        changed = self.observe(result)
        if changed is not None:
            self._on_result(changed)
        return changed

    async def run(self) -> None:
        """Probe every period until stopped (a startup probe stops once started)."""
        if self.initial_delay:
            await self._sleep(self.initial_delay)
        while not self._stopped:
            await self.probe_once()
            if self.kind == "startup" and self.value:
                return
            await self._sleep(self.period)

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"{self.kind}-probe")
        return self._task

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
