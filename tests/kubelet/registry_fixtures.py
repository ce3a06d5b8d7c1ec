"""A private image registry on loopback for pull tests, with basic auth and our busybox in it.

Debian's ``docker-registry`` (the CNCF distribution registry) serves plain HTTP on
127.0.0.1 with an htpasswd file; images get in through the registry HTTP API v2 (blob
uploads and a manifest PUT), so no docker or skopeo is needed. containerd is told the
registry speaks plain HTTP through a ``hosts.toml`` (:class:`RegistryHost`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import secrets
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from pyk8s.kubelet import images
from pyk8s.kubelet.runtimes import Containerd
from pyk8s.kubelet.runtimes.containerd import RegistryHost

REGISTRY_BIN = "docker-registry"
#: where the fixture pushes our busybox image inside the registry
BUSYBOX_REPO, BUSYBOX_TAG = "pyk8s/busybox", "1.35"


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash (the only htpasswd format the registry accepts)."""
    try:
        import bcrypt  # optional: libcrypt does the same job
    except ImportError:
        lib = ctypes.CDLL("libcrypt.so.1")
        lib.crypt_gensalt.restype = ctypes.c_char_p
        lib.crypt.restype = ctypes.c_char_p
        salt = lib.crypt_gensalt(b"$2b$", 5, None, 0)
        hashed = lib.crypt(password.encode(), salt) if salt else None
        if not hashed or not hashed.startswith(b"$2"):
            pytest.skip("neither the bcrypt module nor a bcrypt-capable libcrypt is available")
        return str(hashed.decode())
    return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    """A running registry: ``host`` is what image names start with (``127.0.0.1:PORT``)."""

    host: str
    username: str
    password: str

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def busybox(self) -> str:
        return f"{self.host}/{BUSYBOX_REPO}:{BUSYBOX_TAG}"

    def dockerconfigjson(self) -> dict[str, object]:
        """A kubernetes.io/dockerconfigjson Secret granting access to this registry."""
        auth = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        config = {"auths": {self.host: {"auth": auth}}}
        data = base64.b64encode(json.dumps(config).encode()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "regcred", "namespace": "default"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": data},
        }


async def push_oci_archive(registry: Registry, archive: Path, repo: str, tag: str) -> str:
    """Push the single image of an OCI archive as ``repo:tag``; returns the manifest digest."""
    with tarfile.open(archive) as tar:
        files = {
            m.name: f.read()
            for m in tar.getmembers()
            if m.isfile() and (f := tar.extractfile(m)) is not None
        }
    index = json.loads(files["index.json"])
    manifest_desc = index["manifests"][0]

    def blob(digest: str) -> bytes:
        return files["blobs/sha256/" + digest.removeprefix("sha256:")]

    manifest_bytes = blob(manifest_desc["digest"])
    manifest = json.loads(manifest_bytes)
    basic = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
        for desc in [manifest["config"], *manifest["layers"]]:
            async with http.post(f"{registry.url}/v2/{repo}/blobs/uploads/") as resp:
                assert resp.status == 202, await resp.text()
                location = resp.headers["Location"]
            if location.startswith("/"):
                location = registry.url + location
            sep = "&" if "?" in location else "?"
            async with http.put(
                f"{location}{sep}digest={desc['digest']}",
                data=blob(desc["digest"]),
                headers={"Content-Type": "application/octet-stream"},
            ) as resp:
                assert resp.status == 201, await resp.text()
        async with http.put(
            f"{registry.url}/v2/{repo}/manifests/{tag}",
            data=manifest_bytes,
            headers={"Content-Type": manifest_desc["mediaType"]},
        ) as resp:
            assert resp.status == 201, await resp.text()
            return str(resp.headers["Docker-Content-Digest"])


async def _wait_serving(url: str, proc: asyncio.subprocess.Process, timeout: float) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout), aiohttp.ClientSession() as http:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"docker-registry exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/v2/") as resp:
                    if resp.status in (200, 401):
                        return
            await asyncio.sleep(0.05)


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    """docker-registry on 127.0.0.1:<free port> with basic auth, our busybox pushed into it."""
    if shutil.which(REGISTRY_BIN) is None:
        pytest.skip("docker-registry is not installed")
    if not images.BUSYBOX_BINARY.exists():
        pytest.skip("busybox-static is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="pyk8s-registry-"))
    reg = Registry(f"127.0.0.1:{_free_port()}", "pyk8s", secrets.token_hex(8))
    (workdir / "htpasswd").write_text(f"{reg.username}:{bcrypt_hash(reg.password)}\n")
    # JSON is YAML: the registry reads this config as YAML
    config = {
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}},
        "http": {"addr": reg.host},
        "auth": {"htpasswd": {"realm": "pyk8s", "path": str(workdir / "htpasswd")}},
    }
    (workdir / "config.yml").write_text(json.dumps(config))
    with (workdir / "registry.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            REGISTRY_BIN, "serve", str(workdir / "config.yml"),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        await _wait_serving(reg.url, proc, timeout=15)
        archive = await asyncio.to_thread(
            images.build_busybox_image, workdir / "busybox.tar", reg.busybox
        )
        await push_oci_archive(reg, archive, BUSYBOX_REPO, BUSYBOX_TAG)
        yield reg
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
async def containerd_with_registry(containerd: Containerd, registry: Registry) -> Containerd:
    """A private containerd that reaches :func:`registry` over plain HTTP (hosts.toml)."""
    containerd.config.registries[registry.host] = RegistryHost(registry.url)
    containerd.config.write_registry_hosts()  # containerd rereads hosts.toml on every pull
    return containerd
