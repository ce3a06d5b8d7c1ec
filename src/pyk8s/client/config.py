"""Where the API server is and how to prove who we are: kubeconfig files and in-cluster config.

Every component starts from one of two places, as client-go's do: a kubeconfig file
(``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config``: the current context's cluster and
user) or, inside a pod, the service account mounted at
``/var/run/secrets/kubernetes.io/serviceaccount`` plus ``KUBERNETES_SERVICE_HOST/PORT``.
Both become one :class:`Config`, which builds the :class:`ssl.SSLContext` and the
``Authorization`` header the REST client uses.

Key material: Python's :mod:`ssl` loads a client certificate only from files, so embedded
``client-certificate-data``/``client-key-data`` are written to a private (0700) temporary
directory — in ``/dev/shm`` when there is one, so the key never reaches a disk — loaded,
and removed before :meth:`Config.ssl_context` returns. CA data is loaded from memory.

Token files (bound service-account tokens rotate) are re-read at most once a minute, as
client-go's ``cachingTokenSource`` does. ``exec`` and ``auth-provider`` users are not
supported (:class:`~pyk8s.client.errors.ConfigError`).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pyk8s.client.errors import ConfigError

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "Config",
    "default_kubeconfig_paths",
    "load_config",
    "load_incluster_config",
    "load_kubeconfig",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REFRESH_SECONDS = 60.0


@dataclass
class Config:
    """Everything needed to reach and authenticate to one API server."""

    server: str
    #: PEM bytes or a file path for the CA bundle; neither means the system trust store
    ca_data: bytes | None = None
    ca_file: str | None = None
    cert_data: bytes | None = None
    cert_file: str | None = None
    key_data: bytes | None = field(default=None, repr=False)
    key_file: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    #: the context's namespace (in-cluster: the pod's); components mostly pass their own
    namespace: str = "default"
    _token_cache: tuple[str, float] | None = field(default=None, repr=False, compare=False)

    # ---------------------------------------------------------------- TLS

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for :attr:`server` (``None`` for a plain ``http://`` server)."""
        if not self.server.startswith("https://"):
            return None
        if self.insecure_skip_tls_verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data or self.ca_file:
            # the cluster's CA only, as client-go: the system roots do not vouch for it
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            try:
                if self.ca_data:
                    ctx.load_verify_locations(cadata=self.ca_data.decode("ascii", "replace"))
                if self.ca_file:
                    ctx.load_verify_locations(cafile=self.ca_file)
            except (ssl.SSLError, OSError) as err:
                raise ConfigError(f"invalid certificate authority: {err}") from err
        else:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.cert_data or self.cert_file:
            if not (self.key_data or self.key_file):
                raise ConfigError("a client certificate was given without its key")
            if self.cert_file and self.key_file:
                try:
                    ctx.load_cert_chain(self.cert_file, self.key_file)
                except (ssl.SSLError, OSError) as err:
                    raise ConfigError(f"invalid client certificate or key: {err}") from err
            else:
                _load_cert_chain_from_memory(
                    ctx,
                    self.cert_data or Path(self.cert_file or "").read_bytes(),
                    self.key_data or Path(self.key_file or "").read_bytes(),
                )
        return ctx

    # ---------------------------------------------------------------- auth

    def bearer_token(self) -> str | None:
        """The bearer token, re-reading :attr:`token_file` at most once a minute."""
        if self.token:
            return self.token
        if not self.token_file:
            return None
        now = time.monotonic()
        if self._token_cache is not None and now - self._token_cache[1] < TOKEN_REFRESH_SECONDS:
            return self._token_cache[0]
        try:
            tok = Path(self.token_file).read_text().strip()
        except OSError as err:
            if self._token_cache is not None:
                return self._token_cache[0]  # keep the last good one, as client-go does
            raise ConfigError(f"cannot read token file {self.token_file}: {err}") from err
        self._token_cache = (tok, now)
        return tok

    def authorization(self) -> str | None:
        """The ``Authorization`` header value, if this config authenticates by header."""
        tok = self.bearer_token()
        if tok:
            return f"Bearer {tok}"
        if self.username is not None and self.password is not None:
            raw = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        return None


def _private_tmpdir_base() -> str | None:
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None


def _load_cert_chain_from_memory(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """``load_cert_chain`` from bytes: private files that live only for the call."""
    with tempfile.TemporaryDirectory(prefix="pyk8s-tls-", dir=_private_tmpdir_base()) as d:
        os.chmod(d, 0o700)
        paths = []
        for name, data in (("tls.crt", cert), ("tls.key", key)):
            path = os.path.join(d, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            paths.append(path)
        try:
            ctx.load_cert_chain(paths[0], paths[1])
        except ssl.SSLError as err:
            raise ConfigError(f"invalid client certificate or key: {err}") from err


# -------------------------------------------------------------------- kubeconfig


def default_kubeconfig_paths() -> list[Path]:
    """``$KUBECONFIG`` (a path list) if set, else ``~/.kube/config``."""
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _named(entries: Any, what: str, source: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if entries is None:
        return out
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: {what} must be a list")
    for e in entries:
        if isinstance(e, dict) and isinstance(e.get("name"), str):
            out.setdefault(e["name"], e)
    return out


def _read_kubeconfig(paths: list[Path]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Merge kubeconfig files the way client-go does: the first definition of a name wins.

    Also returns, per ``cluster:<name>``/``user:<name>``, the file that defined it (relative
    paths inside an entry resolve against that file's directory).
    """
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    origin: dict[str, Path] = {}
    found = False
    for path in paths:
        if not path.exists():
            continue
        found = True
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read kubeconfig {path}: {err}") from err
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: not a kubeconfig")
        for section, singular in (("clusters", "cluster"), ("users", "user"), ("contexts", "")):
            for name, entry in _named(doc.get(section), section, path).items():
                if name not in merged[section]:
                    merged[section][name] = entry
                    if singular:
                        origin[f"{singular}:{name}"] = path
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = str(doc["current-context"])
    if not found:
        raise ConfigError("no kubeconfig found at " + ", ".join(map(str, paths)))
    return merged, origin


def _resolve(path: Any, base: Path) -> str | None:
    if not path:
        return None
    p = Path(str(path)).expanduser()
    return str(p if p.is_absolute() else base.parent / p)


def _b64(value: Any, what: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=False)
    except ValueError as err:
        raise ConfigError(f"{what} is not valid base64") from err


def load_kubeconfig(
    path: str | os.PathLike[str] | None = None, context: str | None = None
) -> Config:
    """The :class:`Config` of ``context`` (default: the current context) in a kubeconfig."""
    paths = [Path(path).expanduser()] if path is not None else default_kubeconfig_paths()
    merged, origin = _read_kubeconfig(paths)
    ctx_name = context or merged["current-context"]
    if not ctx_name:
        raise ConfigError("the kubeconfig has no current-context")
    ctx_entry = merged["contexts"].get(ctx_name)
    if ctx_entry is None:
        raise ConfigError(f'context "{ctx_name}" does not exist')
    ctx = ctx_entry.get("context") or {}
    cluster_name = str(ctx.get("cluster") or "")
    user_name = str(ctx.get("user") or "")
    cluster_entry = merged["clusters"].get(cluster_name)
    if cluster_entry is None:
        raise ConfigError(f'cluster "{cluster_name}" does not exist')
    cluster = cluster_entry.get("cluster") or {}
    user: Mapping[str, Any] = {}
    if user_name:
        user_entry = merged["users"].get(user_name)
        if user_entry is None:
            raise ConfigError(f'user "{user_name}" does not exist')
        user = user_entry.get("user") or {}
    if user.get("exec") or user.get("auth-provider"):
        raise ConfigError(f'user "{user_name}": exec and auth-provider plugins are not supported')
    server = str(cluster.get("server") or "")
    if not server:
        raise ConfigError(f'cluster "{cluster_name}" has no server')
    cbase = origin.get(f"cluster:{cluster_name}", paths[0])
    ubase = origin.get(f"user:{user_name}", paths[0])
    return Config(
        server=server.rstrip("/"),
        ca_data=_b64(cluster.get("certificate-authority-data"), "certificate-authority-data"),
        ca_file=_resolve(cluster.get("certificate-authority"), cbase),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name") or None,
        cert_data=_b64(user.get("client-certificate-data"), "client-certificate-data"),
        cert_file=_resolve(user.get("client-certificate"), ubase),
        key_data=_b64(user.get("client-key-data"), "client-key-data"),
        key_file=_resolve(user.get("client-key"), ubase),
        token=user.get("token") or None,
        token_file=_resolve(user.get("tokenFile"), ubase),
        username=user.get("username"),
        password=user.get("password"),
        namespace=str(ctx.get("namespace") or "default"),
    )


# -------------------------------------------------------------------- in-cluster


def load_incluster_config(
    sa_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """The pod's own service account, as client-go's ``rest.InClusterConfig``."""
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError(
            "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
            "KUBERNETES_SERVICE_PORT must be defined"
        )
    base = Path(sa_dir)
    token_file = base / "token"
    if not token_file.exists():
        raise ConfigError(f"in-cluster token file {token_file} does not exist")
    ca = base / "ca.crt"
    try:
        namespace = (base / "namespace").read_text().strip() or "default"
    except OSError:
        namespace = "default"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 service address
    return Config(
        server=f"https://{host}:{port}",
        ca_file=str(ca) if ca.exists() else None,
        token_file=str(token_file),
        namespace=namespace,
    )


def load_config(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> Config:
    """The usual order: an explicit kubeconfig, ``$KUBECONFIG``, in-cluster, ``~/.kube/config``."""
    if kubeconfig is not None:
        return load_kubeconfig(kubeconfig, context)
    if os.environ.get("KUBECONFIG"):
        return load_kubeconfig(None, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT_DIR / "token").exists():
        return load_incluster_config()
    return load_kubeconfig(None, context)
