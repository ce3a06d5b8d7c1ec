"""Each API server's identity Lease (upstream's APIServerIdentity, on by default).

Why: with several API servers, clients and controllers (storage version migration,
``kubectl get leases -n kube-system -l apiserver.kubernetes.io/identity``) find the
live servers through a Lease ``apiserver-<hash of the host name>`` in kube-system,
labelled ``apiserver.kubernetes.io/identity=kube-apiserver``, renewed every 10 s with a
one-hour duration. As upstream, each server also deletes identity Leases that have not
been renewed for longer than their duration (a server that went away).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import socket
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from pyk8s.api import errors
from pyk8s.apiserver.rest import DeleteOptions

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

__all__ = ["IDENTITY_LABEL", "IdentityLease", "lease_name"]

IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
LEASE_DURATION = 3600


def lease_name(hostname: str) -> str:
    """``apiserver-`` and the base32 of the first 16 bytes of the host name's SHA-256
    (upstream's naming)."""
    digest = hashlib.sha256(hostname.encode()).digest()[:16]
    return "apiserver-" + base64.b32encode(digest).decode().rstrip("=").lower()


def _micro_time(at: datetime.datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class IdentityLease:
    """Creates or renews this server's identity Lease; collects expired ones."""

    def __init__(self, handlers: ResourceHandlers, hostname: str | None = None) -> None:
        self.handlers = handlers
        self.hostname = hostname or socket.gethostname()
        self.name = lease_name(self.hostname)
        self.holder = f"{self.name}_{uuid.uuid4()}"
        r = handlers.registry.for_api_version("coordination.k8s.io/v1", "Lease")
        assert r is not None
        self.resource = r

    async def renew(self, now: datetime.datetime | None = None) -> None:
        now = now or datetime.datetime.now(datetime.UTC)
        rest = self.handlers.rest(self.resource)
        spec = {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": _micro_time(now),
        }
        try:
            current, kv = await rest.read("kube-system", self.name)
        except errors.StatusError:
            await self.handlers.create_object(
                self.resource,
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.name,
                        "namespace": "kube-system",
                        "labels": {
                            IDENTITY_LABEL: "kube-apiserver",
                            "kubernetes.io/hostname": self.hostname,
                        },
                    },
                    "spec": spec,
                },
            )
            return
        new: dict[str, Any] = {**current, "spec": {**(current.get("spec") or {}), **spec}}
        await self.handlers.update_object(self.resource, new, current, kv, "")

    async def collect(self, now: datetime.datetime | None = None) -> list[str]:
        """Delete identity Leases not renewed within their duration; their names."""
        now = now or datetime.datetime.now(datetime.UTC)
        rest = self.handlers.rest(self.resource)
        gone = []
        listed = await rest.store.list(self.resource.key_prefix("kube-system"))
        for lease in (orjson.loads(kv.value) for kv in listed.kvs):
            meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
            if IDENTITY_LABEL not in (meta.get("labels") or {}) or meta["name"] == self.name:
                continue
            renewed = spec.get("renewTime")
            if not renewed:
                continue
            at = datetime.datetime.fromisoformat(renewed.replace("Z", "+00:00"))
            duration = int(spec.get("leaseDurationSeconds") or LEASE_DURATION)
            if now - at > datetime.timedelta(seconds=duration):
                with contextlib.suppress(errors.StatusError):
                    await rest.delete("kube-system", meta["name"], DeleteOptions())
                gone.append(meta["name"])
        return gone
