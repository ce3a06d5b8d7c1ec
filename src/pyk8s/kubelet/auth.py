"""Who may use the kubelet's API: upstream's webhook authentication and authorization.

Why: port 10250 runs commands in containers and reads their logs. Trusting every holder
of a certificate from the cluster CA would let any node, component or user with such a
certificate exec into any pod. As upstream's kubelet in ``Webhook`` mode (what kubeadm
and k3s configure), every request is

* **authenticated**: by the client certificate the TLS layer verified against the
  cluster CA (user = CN, groups = O), or by a bearer token the API server vouches for in
  a TokenReview; nothing else gets in (401 ``Unauthorized``, anonymous access being off);
* **authorized**: by a SubjectAccessReview of the user on ``nodes/<subresource>`` named
  after this node, the verb from the HTTP method (GET ``get``, POST ``create``, …) and
  the subresource from the path: ``/stats/`` ``stats``, ``/metrics`` ``metrics``,
  ``/logs/`` ``log``, ``/spec/`` ``spec``, anything else (exec, attach, port-forward,
  container logs, ``/healthz``, ``/pods``) ``proxy``. A refusal is 403 with upstream's
  text ``Forbidden (user=…, verb=…, resource=nodes, subresource=…)``.

Decisions are cached as upstream's webhook authorizer caches them (allowed for 5 minutes,
denied for 30 seconds), so a log stream or a metrics scrape costs one review per user
and path kind, not one per request. The API server reaches the kubelet with its own
client certificate (``kube-apiserver-kubelet-client`` in ``system:masters``), so
``kubectl exec/logs/port-forward`` are authorized by the API server first and pass here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.client import Client
from pyk8s.client.errors import ClientError

__all__ = ["KubeletAuth", "Refusal", "request_attributes"]

log = logging.getLogger(__name__)

TOKEN_REVIEWS: Resource = REGISTRY.get("authentication.k8s.io", "v1", "tokenreviews")  # type: ignore[assignment]
ACCESS_REVIEWS: Resource = REGISTRY.get("authorization.k8s.io", "v1", "subjectaccessreviews")  # type: ignore[assignment]

ALLOWED_TTL = 300.0
DENIED_TTL = 30.0
TOKEN_TTL = 120.0

_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
          "DELETE": "delete"}  # fmt: skip
_SUBRESOURCES = (("/stats/", "stats"), ("/metrics", "metrics"), ("/logs/", "log"),
                 ("/spec/", "spec"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """The response a refused request gets (status and plain-text body)."""

    status: int
    message: str


def request_attributes(method: str, path: str) -> tuple[str, str]:
    """(verb, subresource of ``nodes``) for a request, as upstream's kubelet maps them."""
    verb = _VERBS.get(method.upper(), method.lower())
    path = path.split("?", 1)[0]
    for prefix, subresource in _SUBRESOURCES:
        if path == prefix.rstrip("/") or path.startswith(prefix):
            return verb, subresource
    return verb, "proxy"


def _user_from_cert(der: bytes) -> User:
    subject = x509.load_der_x509_certificate(der).subject
    cn = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return User(str(cn[0].value) if cn else "", tuple(str(o.value) for o in orgs))


class KubeletAuth:
    """Authenticates and authorizes the kubelet API's callers (module docstring)."""

    def __init__(self, client: Client, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        #: (user, groups, verb, subresource) -> (allowed, until)
        self._decisions: dict[tuple[str, tuple[str, ...], str, str], tuple[bool, float]] = {}
        #: bearer token -> (user or None when refused, until)
        self._tokens: dict[str, tuple[User | None, float]] = {}

    async def check(
        self, method: str, path: str, headers: Sequence[bytes], peer_der: bytes | None
    ) -> Refusal | None:
        """None when the request may go on, else how to refuse it."""
        user = await self._authenticate(headers, peer_der)
        if user is None:
            return Refusal(401, "Unauthorized")
        verb, subresource = request_attributes(method, path)
        if await self._allowed(user, verb, subresource):
            return None
        return Refusal(
            403,
            f"Forbidden (user={user.name}, verb={verb}, resource=nodes, subresource={subresource})",
        )

    async def _authenticate(self, headers: Sequence[bytes], peer_der: bytes | None) -> User | None:
        if peer_der is not None:
            return _user_from_cert(peer_der)
        for header in headers:
            name, _, value = header.partition(b":")
            if name.strip().lower() == b"authorization":
                scheme, _, token = value.strip().decode("latin-1").partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    return await self._review_token(token.strip())
        return None

    async def _review_token(self, token: str) -> User | None:
        now = time.monotonic()
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": token}}  # fmt: skip
        try:
            status = (await self.client.create(TOKEN_REVIEWS, review)).get("status") or {}
        except ClientError as err:
            log.warning("token review failed", extra={"error": str(err)})
            return None
        user: User | None = None
        if status.get("authenticated"):
            info = status.get("user") or {}
            user = User(
                str(info.get("username", "")),
                tuple(str(g) for g in info.get("groups") or ()),
                str(info.get("uid", "")),
            )
        self._tokens[token] = (user, now + TOKEN_TTL)
        return user

    async def _allowed(self, user: User, verb: str, subresource: str) -> bool:
        key = (user.name, user.groups, verb, subresource)
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user.name,
                "groups": list(user.groups),
                **({"uid": user.uid} if user.uid else {}),
                "resourceAttributes": {
                    "verb": verb,
                    "resource": "nodes",
                    "subresource": subresource,
                    "name": self.node_name,
                },
            },
        }
        try:
            status = (await self.client.create(ACCESS_REVIEWS, review)).get("status") or {}
        except ClientError as err:
            log.warning("subject access review failed", extra={"error": str(err)})
            return False  # not cached: the next request asks again
        allowed = bool(status.get("allowed"))
        self._decisions[key] = (allowed, now + (ALLOWED_TTL if allowed else DENIED_TTL))
        return allowed
