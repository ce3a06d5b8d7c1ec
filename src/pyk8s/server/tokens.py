"""``pyk8s token create|list|delete|rotate``: the cluster's join tokens (k3s's and
kubeadm's ``token`` commands).

Why: a join token is a bootstrap token (a ``bootstrap.kubernetes.io/token`` Secret
``bootstrap-token-<id>`` in kube-system); an operator needs short-lived tokens for a
few new nodes, a list of what can join, and a way to revoke them. The Secret layout,
the defaults (24 h, ``signing,authentication``) and the list columns are kubeadm's; the
printed token is k3s's full form ``K10<sha256 of the CA>::<id>.<secret>``, which lets an
agent check the CA it downloads. ``rotate`` replaces the server's own join token
(``DATA_DIR/server/token`` and ``node-token``) and revokes the old one.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re
import secrets
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyk8s.client import Client, ClientError
from pyk8s.client.config import load_kubeconfig
from pyk8s.client.errors import is_already_exists, is_not_found
from pyk8s.server.identities import JOIN_GROUP, join_token_secret

__all__ = [
    "DEFAULT_USAGES",
    "TOKEN_TYPE",
    "TokenError",
    "format_table",
    "human_duration",
    "run",
    "token_secret",
]

TOKEN_TYPE = "bootstrap.kubernetes.io/token"
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
KNOWN_USAGES = ("signing", "authentication")
DEFAULT_USAGES = ("signing", "authentication")
_NS = "kube-system"
SECRETS = ("v1", "Secret")


class TokenError(Exception):
    """A bad flag value or an API refusal, as one line for the user."""


def new_token() -> str:
    alphabet = string.ascii_lowercase + string.digits
    pick = "".join(secrets.choice(alphabet) for _ in range(22))
    return f"{pick[:6]}.{pick[6:]}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret(
    token: str,
    *,
    ttl: float,
    description: str,
    groups: Sequence[str],
    usages: Sequence[str],
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The Secret for ``token`` (TokenError for a bad token, group or usage, with
    kubeadm's texts); ``ttl`` 0 never expires."""
    m = TOKEN_RE.match(token)
    if m is None:
        raise TokenError(f'the bootstrap token "{token}" was not of the form "{TOKEN_RE.pattern}"')
    for group in groups:
        if not GROUP_RE.match(group):
            raise TokenError(
                f'bootstrap group "{group}" is invalid (must match {GROUP_RE.pattern})'
            )
    for usage in usages:
        if usage not in KNOWN_USAGES:
            raise TokenError(
                f"invalid bootstrap token usage string: {usage}, "
                f"valid usage options: {','.join(KNOWN_USAGES)}"
            )
    data = {"token-id": _b64(m[1]), "token-secret": _b64(m[2])}
    if description:
        data["description"] = _b64(description)
    if ttl > 0:
        at = (now or datetime.datetime.now(datetime.UTC)) + datetime.timedelta(seconds=ttl)
        data["expiration"] = _b64(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = _b64("true")
    if groups:
        data["auth-extra-groups"] = _b64(",".join(groups))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{m[1]}", "namespace": _NS},
        "type": TOKEN_TYPE,
        "data": data,
    }


def human_duration(seconds: float) -> str:
    """apimachinery's ``ShortHumanDuration`` (``<invalid>`` for the past)."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s // 60 < 60:
        return f"{s // 60}m"
    if s // 3600 < 48:
        return f"{s // 3600}h"
    if s // 3600 < 24 * 365 * 2:
        return f"{s // 86400}d"
    return f"{s // (86400 * 365)}y"


def _row(secret: dict[str, Any], now: datetime.datetime) -> list[str] | None:
    def field(key: str) -> str:
        raw = (secret.get("data") or {}).get(key)
        return base64.b64decode(raw).decode() if raw else ""

    token_id, token_secret_ = field("token-id"), field("token-secret")
    if not token_id or not token_secret_:
        return None
    ttl, expires = "<forever>", "<never>"
    if exp := field("expiration"):
        try:
            at = datetime.datetime.fromisoformat(exp.replace("Z", "+00:00"))
        except ValueError:
            ttl = expires = "<invalid>"
        else:
            ttl = human_duration((at - now).total_seconds())
            expires = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    usages = sorted(
        k.removeprefix("usage-bootstrap-")
        for k in secret.get("data") or {}
        if k.startswith("usage-bootstrap-") and field(k) == "true"
    )
    return [
        f"{token_id}.{token_secret_}",
        ttl,
        expires,
        ",".join(usages) or "<none>",
        field("description") or "<none>",
        field("auth-extra-groups") or "<none>",
    ]


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """kubeadm's tabwriter (3 spaces of padding) with its header."""
    table = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"], *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    return "\n".join(
        "".join(c.ljust(w + 3) for c, w in zip(r, widths, strict=False)) + r[-1] for r in table
    )


def _token_id(text: str) -> str:
    """The id in ``abcdef``, ``abcdef.<secret>`` or ``K10<hash>::abcdef.<secret>``."""
    token = text.rpartition("::")[2]
    token_id = token.partition(".")[0]
    if not ID_RE.match(token_id):
        raise TokenError(
            f'given token didn\'t match pattern "{ID_RE.pattern}" or "{TOKEN_RE.pattern}"'
        )
    return token_id


def _ca_hash(kubeconfig: Path, data_dir: Path) -> str:
    ca = data_dir / "server" / "tls" / "ca.crt"
    if ca.exists():
        return hashlib.sha256(ca.read_bytes()).hexdigest()
    cfg = load_kubeconfig(kubeconfig)
    pem = cfg.ca_data or (Path(cfg.ca_file).read_bytes() if cfg.ca_file else b"")
    return hashlib.sha256(pem).hexdigest()


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


async def run(
    command: str,
    *,
    kubeconfig: Path,
    data_dir: Path,
    tokens: Sequence[str] = (),
    ttl: float = 24 * 3600.0,
    description: str = "",
    groups: Sequence[str] = (),
    usages: Sequence[str] = DEFAULT_USAGES,
    new: str = "",
) -> str:
    """Run ``pyk8s token <command>``; the text to print (TokenError for the user)."""
    async with Client.from_kubeconfig(str(kubeconfig), timeout=30.0) as client:
        try:
            if command == "list":
                page = await client.list(SECRETS, _NS, field_selector=f"type={TOKEN_TYPE}")
                now = datetime.datetime.now(datetime.UTC)
                rows = [r for s in page.get("items") or [] if (r := _row(s, now)) is not None]
                return format_table(rows)
            if command == "delete":
                out = []
                for text in tokens:
                    token_id = _token_id(text)
                    await client.delete(SECRETS, f"bootstrap-token-{token_id}", _NS)
                    out.append(f'bootstrap token "{token_id}" deleted')
                return "\n".join(out)
            digest = _ca_hash(kubeconfig, data_dir)
            if command == "create":
                token = tokens[0] if tokens else new_token()
                secret = token_secret(
                    token,
                    ttl=ttl,
                    description=description,
                    groups=list(groups) or [JOIN_GROUP],
                    usages=usages,
                )
                await _create(client, secret)
                return f"K10{digest}::{token}"
            if command == "rotate":
                return await _rotate(client, data_dir, digest, new)
        except ClientError as err:
            raise TokenError(str(err)) from err
    raise TokenError(f"unknown command {command}")


async def _create(client: Client, secret: dict[str, Any]) -> None:
    try:
        await client.create(SECRETS, secret, _NS)
    except ClientError as err:
        if is_already_exists(err):
            token_id = secret["metadata"]["name"].removeprefix("bootstrap-token-")
            raise TokenError(f'a token with id "{token_id}" already exists') from err
        raise


async def _rotate(client: Client, data_dir: Path, digest: str, new: str) -> str:
    """A new server join token: its Secret (as the server makes it), then the files the
    server reads at start, then the old Secret deleted."""
    path = data_dir / "server" / "token"
    try:
        old = path.read_text().strip()
    except OSError as err:
        raise TokenError(f"no join token at {path}: run this on the server host") from err
    token = new.rpartition("::")[2] or new_token()
    if not TOKEN_RE.match(token):
        raise TokenError(f'the bootstrap token "{token}" was not of the form "{TOKEN_RE.pattern}"')
    await _create(client, join_token_secret(token))
    _write_private(path, token)
    _write_private(data_dir / "server" / "node-token", f"K10{digest}::{token}")
    if TOKEN_RE.match(old) and old.partition(".")[0] != token.partition(".")[0]:
        try:
            await client.delete(SECRETS, f"bootstrap-token-{old.partition('.')[0]}", _NS)
        except ClientError as err:
            if not is_not_found(err):
                raise
    return f"K10{digest}::{token}"
