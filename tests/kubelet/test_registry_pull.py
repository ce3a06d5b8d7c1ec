"""Pulls from a password-protected registry on loopback, with credentials from pull secrets."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pyk8s.kubelet.cri import CRIClient, CRIError, CRINotFound, api_pb2
from pyk8s.kubelet.pullsecrets import credentials_for, pull_with_secrets
from pyk8s.kubelet.runtimes import Containerd, ContainerdConfig
from pyk8s.kubelet.runtimes.containerd import RegistryHost
from tests.kubelet.registry_fixtures import Registry


@pytest.fixture
async def cri(containerd_with_registry: Containerd) -> AsyncIterator[CRIClient]:
    async with CRIClient(str(containerd_with_registry.socket), timeout=20) as client:
        await client.wait_ready(10)
        yield client


def _wrong_secret(registry: Registry) -> dict[str, Any]:
    auth = base64.b64encode(f"{registry.username}:not-the-password".encode()).decode()
    config = {"auths": {registry.host: {"auth": auth}}}
    return {
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }


@pytest.mark.e2e
async def test_pull_with_the_secret_credentials(cri: CRIClient, registry: Registry) -> None:
    async with asyncio.timeout(60):
        [auth] = credentials_for(registry.busybox, [registry.dockerconfigjson()])
        image_ref = await cri.pull_image(registry.busybox, auth=auth)
        assert image_ref.startswith("sha256:")
        image = await cri.image_status(registry.busybox)
        assert image is not None
        assert registry.busybox in image.repo_tags
        assert image.id == image_ref


@pytest.mark.e2e
async def test_pull_with_secrets_helper(cri: CRIClient, registry: Registry) -> None:
    async with asyncio.timeout(60):
        secrets = [_wrong_secret(registry), registry.dockerconfigjson()]
        # both secrets match: the wrong one fails, the right one is tried next
        assert len(credentials_for(registry.busybox, secrets)) == 2
        await pull_with_secrets(cri, registry.busybox, secrets)
        assert await cri.image_status(registry.busybox) is not None


@pytest.mark.e2e
async def test_pull_without_credentials_fails(cri: CRIClient, registry: Registry) -> None:
    async with asyncio.timeout(60):
        with pytest.raises(CRIError) as info:
            await cri.pull_image(registry.busybox)
        assert not isinstance(info.value, CRINotFound)
        message = str(info.value)
        assert registry.busybox in message
        assert "401" in message or "nauthorized" in message
        assert await cri.image_status(registry.busybox) is None


@pytest.mark.e2e
async def test_pull_with_wrong_credentials_fails(cri: CRIClient, registry: Registry) -> None:
    async with asyncio.timeout(60):
        with pytest.raises(CRIError) as info:
            await pull_with_secrets(cri, registry.busybox, [_wrong_secret(registry)])
        message = str(info.value)
        assert registry.busybox in message
        assert "401" in message or "nauthorized" in message
        assert await cri.image_status(registry.busybox) is None


@pytest.mark.e2e
async def test_missing_image_fails(cri: CRIClient, registry: Registry) -> None:
    async with asyncio.timeout(60):
        auth = api_pb2.AuthConfig(username=registry.username, password=registry.password)
        missing = f"{registry.host}/pyk8s/missing:1"
        with pytest.raises(CRIError) as info:
            await cri.pull_image(missing, auth=auth)
        assert "not found" in str(info.value)


def test_registry_hosts_are_written_for_containerd(tmp_path: Path) -> None:
    config = ContainerdConfig(
        tmp_path,
        registries={
            "127.0.0.1:5000": RegistryHost("http://127.0.0.1:5000"),
            "reg.example:443": RegistryHost("https://reg.example", ca_file=tmp_path / "ca.pem"),
        },
    )
    assert f'config_path = "{config.registry_config_dir}"' in Containerd(config).render_config()
    config.write_registry_hosts()
    plain = (config.registry_config_dir / "127.0.0.1:5000" / "hosts.toml").read_text()
    assert 'server = "http://127.0.0.1:5000"' in plain
    assert '[host."http://127.0.0.1:5000"]' in plain
    tls = (config.registry_config_dir / "reg.example:443" / "hosts.toml").read_text()
    assert f'ca = "{tmp_path / "ca.pem"}"' in tls
