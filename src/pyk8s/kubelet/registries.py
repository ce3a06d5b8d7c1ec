"""k3s's ``registries.yaml`` turned into containerd's registry configuration.

The node's ``DATA_DIR/etc/registries.yaml`` (``DATA_DIR/agent/etc/registries.yaml``
under ``pyk8s server``) has k3s's format::

    mirrors:
      docker.io:
        endpoint: ["http://mirror.local:5000"]
        rewrite: {"^library/(.*)": "mirrored/$1"}
      "*":                                   # every registry
        endpoint: ["https://cache.local"]
    configs:
      mirror.local:5000:
        auth: {username: u, password: p}     # or auth: <base64 u:p>, identity_token
        tls: {ca_file: ..., cert_file: ..., key_file: ..., insecure_skip_verify: true}

Mirrors and TLS become one ``<registry>/hosts.toml`` per registry in containerd's
``config_path`` directory (``_default`` for ``"*"``), which containerd reads on every
pull: a changed file applies to the next pull, with no restart of containerd or of any
pod. Like k3s, the registry's own endpoint stays last (``server``), so a mirror that is
down falls back to it. Credentials from ``configs.*.auth`` go to containerd's CRI
``registry.configs`` (containerd reads those at its start). ``rewrite`` needs k3s's
patched containerd; Debian's ignores it, so pyk8s logs that it is not applied.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

__all__ = [
    "MARKER",
    "Mirror",
    "Registries",
    "RegistriesError",
    "RegistryConfig",
    "auth_toml",
    "hosts_tomls",
    "load",
    "parse",
    "write_hosts",
]

log = logging.getLogger(__name__)

#: the first line of every hosts.toml written from registries.yaml
MARKER = "# written by pyk8s from registries.yaml"
#: the registry containerd reaches for docker.io images without a mirror
DOCKER_HUB = "https://registry-1.docker.io"


class RegistriesError(ValueError):
    """registries.yaml does not parse or has a field of the wrong shape."""


@dataclass(frozen=True)
class Mirror:
    endpoints: tuple[str, ...] = ()
    rewrites: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RegistryConfig:
    username: str = ""
    password: str = ""
    auth: str = ""
    identity_token: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False

    @property
    def has_auth(self) -> bool:
        return bool(self.username or self.password or self.auth or self.identity_token)


@dataclass(frozen=True)
class Registries:
    mirrors: dict[str, Mirror] = field(default_factory=dict)
    configs: dict[str, RegistryConfig] = field(default_factory=dict)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RegistriesError(f"{path}: expected a mapping")
    return value


def _str(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise RegistriesError(f"{path}: expected a string")
    return str(value)


def parse(text: str) -> Registries:
    """registries.yaml's text; RegistriesError naming the field that is wrong."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RegistriesError(f"registries.yaml: {err}") from None
    doc = _mapping(doc, "registries.yaml")
    mirrors: dict[str, Mirror] = {}
    for name, spec in _mapping(doc.get("mirrors"), "mirrors").items():
        spec = _mapping(spec, f"mirrors.{name}")
        endpoints = spec.get("endpoint") or []
        if isinstance(endpoints, str) or not isinstance(endpoints, list):
            raise RegistriesError(f"mirrors.{name}.endpoint: expected a list of URLs")
        rewrites = _mapping(spec.get("rewrite"), f"mirrors.{name}.rewrite")
        mirrors[str(name)] = Mirror(
            tuple(_str(e, f"mirrors.{name}.endpoint") for e in endpoints),
            tuple((str(k), _str(v, f"mirrors.{name}.rewrite")) for k, v in rewrites.items()),
        )
    configs: dict[str, RegistryConfig] = {}
    for name, spec in _mapping(doc.get("configs"), "configs").items():
        spec = _mapping(spec, f"configs.{name}")
        auth = _mapping(spec.get("auth"), f"configs.{name}.auth")
        tls = _mapping(spec.get("tls"), f"configs.{name}.tls")
        configs[str(name)] = RegistryConfig(
            username=_str(auth.get("username"), f"configs.{name}.auth.username"),
            password=_str(auth.get("password"), f"configs.{name}.auth.password"),
            auth=_str(auth.get("auth"), f"configs.{name}.auth.auth"),
            identity_token=_str(auth.get("identity_token"), f"configs.{name}.auth.identity_token"),
            ca_file=_str(tls.get("ca_file"), f"configs.{name}.tls.ca_file"),
            cert_file=_str(tls.get("cert_file"), f"configs.{name}.tls.cert_file"),
            key_file=_str(tls.get("key_file"), f"configs.{name}.tls.key_file"),
            insecure_skip_verify=bool(tls.get("insecure_skip_verify", False)),
        )
    return Registries(mirrors, configs)


def load(path: Path) -> Registries:
    """The file's registries (none when it does not exist)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Registries()
    return parse(text)


def _q(value: object) -> str:
    return json.dumps(str(value))  # JSON string escaping is valid TOML


def _url(endpoint: str) -> str:
    """An endpoint as containerd wants it: a scheme (https by default), no trailing /."""
    url = endpoint if "://" in endpoint else f"https://{endpoint}"
    return url.rstrip("/")


def _host_of(url: str) -> str:
    return urlsplit(url).netloc


def _tls_lines(config: RegistryConfig | None) -> list[str]:
    if config is None:
        return []
    lines = []
    if config.ca_file:
        lines.append(f"  ca = {_q(config.ca_file)}")
    if config.cert_file and config.key_file:
        lines.append(f"  client = [[{_q(config.cert_file)}, {_q(config.key_file)}]]")
    elif config.cert_file:
        lines.append(f"  client = {_q(config.cert_file)}")
    if config.insecure_skip_verify:
        lines.append("  skip_verify = true")
    return lines


def _upstream(registry: str) -> str:
    return DOCKER_HUB if registry == "docker.io" else f"https://{registry}"


def hosts_tomls(reg: Registries) -> dict[str, str]:
    """containerd ``config_path`` directory name -> its hosts.toml."""
    out: dict[str, str] = {}
    for name, mirror in reg.mirrors.items():
        if mirror.rewrites:
            log.warning(
                "registries.yaml: mirrors.%s.rewrite is not applied (it needs k3s's "
                "containerd; this one pulls the names unchanged)",
                name,
            )
        lines = [MARKER]
        if name != "*":
            lines.append(f"server = {_q(_upstream(name))}")
        for endpoint in mirror.endpoints:
            url = _url(endpoint)
            lines += ["", f"[host.{_q(url)}]", '  capabilities = ["pull", "resolve"]']
            lines += _tls_lines(reg.configs.get(_host_of(url)))
        out["_default" if name == "*" else name] = "\n".join(lines) + "\n"
    for name, config in reg.configs.items():
        if name in out or name in reg.mirrors or not _tls_lines(config):
            continue  # a registry's own TLS, when no mirror entry already covers it
        url = _upstream(name)
        lines = [MARKER, f"server = {_q(url)}", "", f"[host.{_q(url)}]",
                 '  capabilities = ["pull", "resolve", "push"]', *_tls_lines(config)]  # fmt: skip
        out[name] = "\n".join(lines) + "\n"
    return out


def write_hosts(config_dir: Path, files: Mapping[str, str]) -> bool:
    """Make config_dir's registries.yaml-made hosts.toml files exactly ``files`` (others,
    e.g. from --insecure-registry, are left alone); whether anything changed."""
    changed = False
    config_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = config_dir / name / "hosts.toml"
        try:
            if path.read_text() == text:
                continue
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".hosts.toml.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        changed = True
    for path in config_dir.glob("*/hosts.toml"):
        if path.parent.name in files:
            continue
        try:
            ours = path.read_text().startswith(MARKER)
        except OSError:
            continue
        if ours:
            path.unlink()
            changed = True
    return changed


def auth_toml(reg: Registries) -> str:
    """CRI ``registry.configs.<host>.auth`` tables for containerd's config.toml."""
    lines = []
    for name, config in sorted(reg.configs.items()):
        if not config.has_auth:
            continue
        lines.append(f'[plugins."io.containerd.grpc.v1.cri".registry.configs.{_q(name)}.auth]')
        if config.username:
            lines.append(f"  username = {_q(config.username)}")
        if config.password:
            lines.append(f"  password = {_q(config.password)}")
        if config.auth:
            lines.append(f"  auth = {_q(config.auth)}")
        if config.identity_token:
            lines.append(f"  identitytoken = {_q(config.identity_token)}")
        lines.append("")
    return "\n".join(lines)
