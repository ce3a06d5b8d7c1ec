"""Local images are deterministic OCI layouts, and the CNI conflist is what containerd reads."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pyk8s.kubelet import cni, images

pytestmark = pytest.mark.skipif(
    not images.BUSYBOX_BINARY.exists(), reason="busybox-static is not installed"
)


def _read(archive: Path, name: str) -> Any:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return json.load(member)


def _blob(archive: Path, digest: str) -> Any:
    return _read(archive, "blobs/sha256/" + digest.removeprefix("sha256:"))


def test_busybox_image_is_deterministic(tmp_path: Path) -> None:
    a = images.build_busybox_image(tmp_path / "a.tar")
    b = images.build_busybox_image(tmp_path / "b.tar")
    assert a.read_bytes() == b.read_bytes()
    assert images.manifest_digest(a) == images.manifest_digest(b)
    with tarfile.open(a) as tar:
        names = tar.getnames()
    assert {"index.json", "oci-layout"} <= set(names)
    assert sum(n.startswith("blobs/sha256/") for n in names) == 3


def test_index_names_the_full_ref_and_config_is_runnable(tmp_path: Path) -> None:
    archive = images.build_busybox_image(tmp_path / "bb.tar", ref="example.test/bb:1", cmd=["id"])
    index = _read(archive, "index.json")
    (desc,) = index["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == "example.test/bb:1"
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == "example.test/bb:1"
    manifest = _blob(archive, desc["digest"])
    config = _blob(archive, manifest["config"]["digest"])
    assert config["os"] == "linux"
    assert config["architecture"] == images.oci_architecture()
    assert config["config"]["Cmd"] == ["id"]
    assert any(e.startswith("PATH=") for e in config["config"]["Env"])


def test_layer_has_busybox_applets_and_users(tmp_path: Path) -> None:
    archive = images.build_busybox_image(tmp_path / "bb.tar")
    index = _read(archive, "index.json")
    manifest = _blob(archive, index["manifests"][0]["digest"])
    (layer,) = manifest["layers"]
    with tarfile.open(archive) as outer:
        blob = outer.extractfile("blobs/sha256/" + layer["digest"].removeprefix("sha256:"))
        assert blob is not None
        with tarfile.open(fileobj=blob, mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            passwd = tar.extractfile("etc/passwd")
            assert passwd is not None
            users = {line.split(":")[0] for line in passwd.read().decode().splitlines()}
    assert members["bin/busybox"].isfile()
    for applet in ("sh", "sleep", "echo", "httpd", "wget", "nc"):
        assert members[f"bin/{applet}"].linkname == "busybox"
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert users == {"root", "nobody"}


def test_pause_image_sleeps_until_term(tmp_path: Path) -> None:
    archive = images.build_pause_image(tmp_path / "pause.tar")
    index = _read(archive, "index.json")
    desc = index["manifests"][0]
    assert desc["annotations"]["io.containerd.image.name"] == images.PAUSE_REF
    config = _blob(archive, _blob(archive, desc["digest"])["config"]["digest"])
    entrypoint = config["config"]["Entrypoint"]
    assert entrypoint[0] == "/bin/sh" and "TERM" in entrypoint[-1]
    busybox = images.build_busybox_image(tmp_path / "bb.tar")
    assert images.manifest_digest(archive) != images.manifest_digest(busybox)


def test_bridge_conflist(tmp_path: Path) -> None:
    path = cni.write_bridge_conflist(tmp_path / "net.d", "10.244.1.0/24", gateway="10.244.1.1")
    assert path.suffix == ".conflist"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    doc = json.loads(path.read_text())
    assert doc["name"] == "pyk8s"
    bridge, portmap = doc["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
    assert bridge["isGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}]]
    assert bridge["ipam"]["routes"] == [{"dst": "0.0.0.0/0"}]
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_bridge_conflist_rejects_gateway_outside_subnet(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        cni.write_bridge_conflist(tmp_path, "10.244.1.0/24", gateway="10.0.0.1")
