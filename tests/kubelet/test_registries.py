"""k3s's registries.yaml rendered as containerd hosts.toml files and CRI auth, and the
air-gap directory watcher's rule (import what is new once it stopped changing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.kubelet.airgap import ImageDirWatcher
from pyk8s.kubelet.registries import (
    MARKER,
    RegistriesError,
    auth_toml,
    hosts_tomls,
    parse,
    write_hosts,
)

K3S_EXAMPLE = """
mirrors:
  docker.io:
    endpoint:
      - "http://mirror.local:5000"
      - "registry.example.com"
    rewrite:
      "^rancher/(.*)": "mirrorproject/rancher-images/$1"
  "*":
    endpoint: ["https://cache.local"]
configs:
  "registry.example.com":
    auth: {username: xxx, password: yyy}
    tls:
      cert_file: /etc/certs/client.crt
      key_file: /etc/certs/client.key
      ca_file: /etc/certs/ca.crt
  "private.local:5443":
    tls: {insecure_skip_verify: true}
"""


def test_mirrors_and_tls_become_hosts_toml() -> None:
    files = hosts_tomls(parse(K3S_EXAMPLE))
    # a registry with TLS settings gets its own file too (pulls straight from it)
    assert set(files) == {"docker.io", "_default", "private.local:5443", "registry.example.com"}
    docker = files["docker.io"]
    assert docker.startswith(MARKER)
    # the mirrors in order, the registry itself last (server), as k3s does
    assert 'server = "https://registry-1.docker.io"' in docker
    assert docker.index('[host."http://mirror.local:5000"]') < docker.index(
        '[host."https://registry.example.com"]'
    )
    assert 'ca = "/etc/certs/ca.crt"' in docker
    assert 'client = [["/etc/certs/client.crt", "/etc/certs/client.key"]]' in docker
    assert "server =" not in files["_default"]  # "*": every registry, its own upstream
    assert "skip_verify = true" in files["private.local:5443"]


def test_auth_goes_to_cri_registry_configs() -> None:
    text = auth_toml(parse(K3S_EXAMPLE))
    assert '.registry.configs."registry.example.com".auth]' in text
    assert 'username = "xxx"' in text and 'password = "yyy"' in text
    assert "private.local" not in text


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("mirrors: [a]", "mirrors"),
        ("mirrors:\n  docker.io:\n    endpoint: http://x", "mirrors.docker.io.endpoint"),
        ("configs:\n  r:\n    auth: [u]", "configs.r.auth"),
        ("mirrors: {a: 1", "registries.yaml"),
    ],
)
def test_bad_files_name_the_field(text: str, field: str) -> None:
    with pytest.raises(RegistriesError, match=f"^{field}"):
        parse(text)


def test_write_hosts_replaces_only_its_own_files(tmp_path: Path) -> None:
    (tmp_path / "127.0.0.1:5000").mkdir()
    insecure = tmp_path / "127.0.0.1:5000" / "hosts.toml"
    insecure.write_text('server = "http://127.0.0.1:5000"\n')  # from --insecure-registry
    assert write_hosts(tmp_path, {"docker.io": f"{MARKER}\nA\n", "quay.io": f"{MARKER}\nB\n"})
    assert not write_hosts(tmp_path, {"docker.io": f"{MARKER}\nA\n", "quay.io": f"{MARKER}\nB\n"})
    assert write_hosts(tmp_path, {"docker.io": f"{MARKER}\nC\n"})
    assert (tmp_path / "docker.io" / "hosts.toml").read_text() == f"{MARKER}\nC\n"
    assert not (tmp_path / "quay.io" / "hosts.toml").exists()
    assert insecure.exists()


async def test_archives_are_imported_once_they_stop_changing(tmp_path: Path) -> None:
    imported: list[str] = []

    async def do_import(path: Path) -> None:
        imported.append(path.name)

    (tmp_path / "at-start.tar").write_bytes(b"a")
    watcher = ImageDirWatcher(tmp_path, do_import)
    await watcher.import_existing()
    assert imported == ["at-start.tar"]
    (tmp_path / "copying.tar.gz").write_bytes(b"half")
    (tmp_path / "notes.txt").write_bytes(b"not an archive")
    await watcher.poll()
    assert imported == ["at-start.tar"]  # first sight: maybe still being written
    await watcher.poll()
    assert imported == ["at-start.tar", "copying.tar.gz"]
    await watcher.poll()
    assert imported == ["at-start.tar", "copying.tar.gz"]  # once
    (tmp_path / "at-start.tar").write_bytes(b"replaced")
    await watcher.poll()
    await watcher.poll()
    assert imported == ["at-start.tar", "copying.tar.gz", "at-start.tar"]
