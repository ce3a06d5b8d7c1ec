"""A real pyk8s API server for integration tests, driven by the real clients.

One server process per test session (``pyk8s apiserver`` on a free loopback port with
its own data dir and SQLite store); tests isolate themselves in their own namespaces.
``kubectl`` runs the installed kubectl against the server's kubeconfig; ``api`` is the
official ``kubernetes`` Python client configured from the same file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

KUBECTL = "/usr/bin/kubectl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pyk8s_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``pyk8s`` command run in this process, for what it does before it serves (a
    refused flag, a snapshot, a reset): a new process spends most of its time importing
    (10-20 s on a loaded machine), this one has the modules loaded already."""
    from pyk8s.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@dataclass
class Server:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    extra_args: tuple[str, ...] = ()
    #: "apiserver" alone, or "server" (with its supervised components)
    command: str = "apiserver"
    #: what the server runs under, e.g. ``nsenter --net=...`` into a test host's netns
    wrapper: tuple[str, ...] = ()

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """Write a kubeconfig for this server with only the bearer ``token`` (a client
        certificate would win over it) to ``path``."""
        ca = self.data_dir / "server" / "tls" / "ca.crt"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "c", "cluster": {"server": self.url, "certificate-authority": str(ca)}}
            ],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
        path.write_text(json.dumps(config))
        return path

    def _component_ports(self) -> list[str]:
        """``pyk8s server`` children listen on free ports, not the fixed 10257/10259, so
        several servers of one test session do not fight over them."""
        if self.command != "server" or any("-arg" in a for a in self.extra_args):
            return []
        return [
            f"--kube-controller-manager-arg=secure-port={free_port()}",
            f"--kube-scheduler-arg=secure-port={free_port()}",
        ]

    def start(self, timeout: float = 60.0) -> Server:
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                sys.executable,
                "-m",
                "pyk8s",
                self.command,
                "--data-dir",
                str(self.data_dir),
                "--bind-address",
                "127.0.0.1",
                "--https-listen-port",
                str(self.port),
                *self._component_ports(),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"apiserver exited: {self.log_tail()}")
            if self.kubeconfig.exists() and self._ready():
                return self
            time.sleep(0.1)
        self.stop(signal.SIGKILL)  # never leave a half-started server behind
        raise TimeoutError(f"apiserver not ready: {self.log_tail()}")

    def _ready(self) -> bool:
        """``/readyz`` says ok. Asked in this process as an anonymous client (which
        system:public-info-viewer lets read it), not by a kubectl process per poll (most of
        a second each on a loaded machine); through kubectl and the admin kubeconfig when
        that cannot work (anonymous auth off, a serving certificate of another CA)."""
        ca = self.data_dir / "server" / "tls" / "ca.crt"
        if ca.exists():
            try:
                ctx = ssl.create_default_context(cafile=str(ca))
                with urllib.request.urlopen(self.url + "/readyz", context=ctx, timeout=5) as r:
                    return bool(r.read() == b"ok")
            except urllib.error.HTTPError as e:
                if e.code not in (401, 403):
                    return False
            except urllib.error.URLError as e:
                if not isinstance(e.reason, ssl.SSLCertVerificationError):
                    return False  # not listening yet
            except OSError:  # reset while starting
                return False
        out = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), "get", "--raw", "/readyz"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() == "ok"

    def log_tail(self) -> str:
        path = self.data_dir.parent / f"{self.data_dir.name}.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code


class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({out.returncode}):\n{out.stderr}{out.stdout}"
            )
        return out

    def __call__(self, *args: str, **kw: Any) -> str:
        return self.run(*args, **kw).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"kubectl is not installed at {KUBECTL}")
    base = tmp_path_factory.mktemp("pyk8s")
    srv = Server(base / "data", free_port()).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def kubectl(server: Server) -> Kubectl:
    return Kubectl(server.kubeconfig)


@pytest.fixture
def ns(kubectl: Kubectl) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    return name


@pytest.fixture(scope="session")
def api(server: Server) -> Any:
    from kubernetes import config

    return config.new_client_from_config(str(server.kubeconfig))


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawClient:
    """Plain HTTPS requests with the admin certificate, for what kubectl won't send."""

    def __init__(self, server: Server) -> None:
        import ssl

        tls = server.data_dir / "server" / "tls"
        self.ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        self.ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
        self.url = server.url

    def __call__(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> RawResponse:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(
            self.url + path,
            data=body,
            method=method,
            headers={"Content-Type": content_type, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return RawResponse(r.status, dict(r.headers), r.read())
        except urllib.error.HTTPError as err:
            return RawResponse(err.code, dict(err.headers), err.read())


@pytest.fixture(scope="session")
def raw(server: Server) -> RawClient:
    return RawClient(server)
