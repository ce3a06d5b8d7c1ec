"""Probe handlers against real local servers, and the thresholds that turn results into
ready / alive / started verdicts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from aiohttp import web

from pyk8s.kubelet.probes import (
    HEALTH_CHECK_METHOD,
    ProbeKind,
    ProbeResult,
    ProbeWorker,
    decode_health_request,
    encode_health_response,
    probe_exec,
    probe_grpc,
    probe_http,
    probe_tcp,
)

OK = ProbeResult("success")
BAD = ProbeResult("failure", "boom")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    async def status(request: web.Request) -> web.Response:
        if request.headers.get("X-Custom") != "yes" and request.match_info["code"] == "204":
            return web.Response(status=400)
        return web.Response(status=int(request.match_info["code"]), text="hello")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/status/500")

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/redirect", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_http_probe_statuses(http_port: int) -> None:
    async with asyncio.timeout(10):
        ok = await probe_http("127.0.0.1", http_port, "/status/200")
        assert ok.result == "success"
        assert ok.message == "hello"
        # 3xx is success and is not followed (the redirect target would fail).
        assert (await probe_http("127.0.0.1", http_port, "/redirect")).result == "success"
        bad = await probe_http("127.0.0.1", http_port, "status/500")
        assert bad == ProbeResult("failure", "HTTP probe failed with statuscode: 500")


async def test_http_probe_sends_headers(http_port: int) -> None:
    async with asyncio.timeout(10):
        without = await probe_http("127.0.0.1", http_port, "/status/204")
        assert without.result == "failure"
        headers = [{"name": "X-Custom", "value": "yes"}]
        with_header = await probe_http("127.0.0.1", http_port, "/status/204", headers=headers)
        assert with_header.result == "success"


async def test_http_probe_user_agent() -> None:
    agents: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        agents.append(request.headers["User-Agent"])
        return web.Response()

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with asyncio.timeout(10):
            assert (await probe_http("127.0.0.1", port)).result == "success"
    finally:
        await runner.cleanup()
    assert agents == ["kube-probe/1.32"]


async def test_http_probe_connection_refused() -> None:
    port = free_port()
    async with asyncio.timeout(10):
        result = await probe_http("127.0.0.1", port, "/healthz")
    assert result.result == "failure"
    assert result.message == (
        f'Get "http://127.0.0.1:{port}/healthz": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    )


async def test_http_probe_times_out() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    app = web.Application()
    app.router.add_get("/", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with asyncio.timeout(10):
            result = await probe_http("127.0.0.1", port, timeout=0.2)
    finally:
        await runner.cleanup()
    assert result.result == "failure"
    assert "deadline exceeded" in result.message


async def test_tcp_probe_open_and_closed_port() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncio.timeout(10):
            assert await probe_tcp("127.0.0.1", port) == ProbeResult("success")
    finally:
        server.close()
        await server.wait_closed()
    closed = free_port()
    async with asyncio.timeout(10):
        result = await probe_tcp("127.0.0.1", closed)
    assert result == ProbeResult(
        "failure", f"dial tcp 127.0.0.1:{closed}: connect: connection refused"
    )


async def test_exec_probe_exit_codes_and_timeout() -> None:
    calls: list[tuple[list[str], float]] = []

    async def run(command: list[str], limit: float) -> tuple[int, bytes, bytes]:
        calls.append((command, limit))
        if command[0] == "hang":
            await asyncio.sleep(10)
        code = 0 if command[0] == "true" else 1
        return code, b"out\n", b"err\n" if code else b""

    async with asyncio.timeout(10):
        assert await probe_exec(run, ["true"], 1) == ProbeResult("success", "out\n")
        assert await probe_exec(run, ["false"], 1) == ProbeResult("failure", "out\nerr\n")
        assert await probe_exec(run, ["hang"], 0.1) == ProbeResult("failure", "command timed out")
    assert calls[0] == (["true"], 1)


async def test_exec_probe_runner_timeout_is_failure() -> None:
    async def run(command: list[str], limit: float) -> tuple[int, bytes, bytes]:
        raise TimeoutError

    async with asyncio.timeout(10):
        assert (await probe_exec(run, ["x"], 5)).message == "command timed out"


@pytest.fixture
async def grpc_health() -> AsyncIterator[tuple[int, dict[str, int]]]:
    """A health server whose answers (service name -> status number) tests can change."""
    statuses: dict[str, int] = {"": 1, "db": 2}

    async def check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        service = decode_health_request(request)
        if service not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return encode_health_response(statuses[service])

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
    )
    assert HEALTH_CHECK_METHOD == "/grpc.health.v1.Health/Check"
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port, statuses
    finally:
        await server.stop(None)


async def test_grpc_probe_serving_and_not_serving(grpc_health: tuple[int, dict[str, int]]) -> None:
    port, _ = grpc_health
    async with asyncio.timeout(10):
        assert await probe_grpc("127.0.0.1", port) == ProbeResult("success")
        assert await probe_grpc("127.0.0.1", port, "db") == ProbeResult(
            "failure", 'service unhealthy (responded with "NOT_SERVING")'
        )
        unknown = await probe_grpc("127.0.0.1", port, "nope")
    assert unknown.result == "failure"
    assert "NOT_FOUND" in unknown.message


async def test_grpc_probe_nothing_listening() -> None:
    async with asyncio.timeout(10):
        result = await probe_grpc("127.0.0.1", free_port(), timeout=0.5)
    assert result.result == "failure"


def worker(kind: ProbeKind = "readiness", **spec: int) -> tuple[ProbeWorker, list[bool]]:
    changes: list[bool] = []

    async def never() -> ProbeResult:
        raise AssertionError("not run in step tests")

    return ProbeWorker(spec, never, kind, changes.append), changes


def test_initial_verdicts() -> None:
    assert worker("readiness")[0].value is False
    assert worker("liveness")[0].value is True
    assert worker("startup")[0].value is False
    defaults = worker()[0]
    assert (defaults.period, defaults.timeout) == (10, 1)
    assert (defaults.success_threshold, defaults.failure_threshold) == (1, 3)


def test_failure_threshold_keeps_ready_until_third_failure() -> None:
    probe, _ = worker(failureThreshold=3)
    assert probe.observe(OK) is True
    assert probe.observe(BAD) is None
    assert probe.observe(BAD) is None
    assert probe.value is True
    assert probe.observe(BAD) is False
    assert probe.observe(BAD) is None  # no repeated notification
    # A success in between restarts the count.
    assert probe.observe(OK) is True
    assert [probe.observe(r) for r in (BAD, BAD, OK, BAD, BAD)] == [None] * 5
    assert probe.value is True


def test_success_threshold_needs_consecutive_successes() -> None:
    probe, _ = worker(successThreshold=2)
    assert probe.observe(OK) is None
    assert probe.observe(BAD) is None
    assert probe.observe(OK) is None
    assert probe.observe(OK) is True


def test_liveness_fails_after_threshold() -> None:
    probe, _ = worker("liveness", failureThreshold=2)
    assert probe.observe(OK) is None  # already alive
    assert probe.observe(BAD) is None
    assert probe.observe(BAD) is False


async def test_worker_loop_reports_changes_and_stops() -> None:
    results = [OK, BAD, BAD, OK]
    changes: list[bool] = []
    sleeps: list[float] = []
    done = asyncio.Event()

    async def run_once() -> ProbeResult:
        return results.pop(0) if results else OK

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if not results:
            done.set()
        await asyncio.sleep(0)

    spec = {"initialDelaySeconds": 5, "periodSeconds": 2, "failureThreshold": 2}
    probe = ProbeWorker(spec, run_once, "readiness", changes.append, sleep=fake_sleep)
    probe.start()
    async with asyncio.timeout(10):
        await done.wait()
        await probe.stop()
    assert changes == [True, False, True]
    assert sleeps[:2] == [5, 2]


async def test_worker_counts_handler_errors_and_hangs_as_failures() -> None:
    async def broken() -> ProbeResult:
        raise RuntimeError("no such container")

    probe = ProbeWorker({"failureThreshold": 1}, broken, "liveness", lambda ok: None)
    async with asyncio.timeout(10):
        assert await probe.probe_once() is False
    assert probe.last == ProbeResult("failure", "probe error: no such container")


async def test_startup_worker_stops_probing_once_started() -> None:
    runs = 0

    async def run_once() -> ProbeResult:
        nonlocal runs
        runs += 1
        return BAD if runs < 3 else OK

    async def no_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    changes: list[bool] = []
    probe = ProbeWorker({}, run_once, "startup", changes.append, sleep=no_sleep)
    async with asyncio.timeout(10):
        await probe.start()
    assert changes == [True]
    assert runs == 3
