"""CertificateSigningRequests: upstream's three strategies and the certificates admission.

Why here: a CSR is written by three parties through three doors, and each door may change
only its part (upstream's pkg/registry/certificates):

* the main resource: a requester creates it; ``spec.username/uid/groups/extra`` are
  filled from the authenticated requester, never from the body; later updates can
  change metadata only (spec and status are carried over);
* ``/approval``: an approver adds Approved or Denied (only ``status.conditions`` moves),
  and must be allowed the ``approve`` verb on ``signers`` (certificates.k8s.io) named
  after the signer or ``<domain>/*`` (upstream's CertificateApproval admission);
* ``/status``: a signer sets ``status.certificate`` (once approved) and the Failed
  condition, and must be allowed ``sign`` on the same ``signers`` names (upstream's
  CertificateSigning admission).

A ``kubernetes.io/kube-apiserver-client`` request for ``O=system:masters`` is refused
(upstream's CertificateSubjectRestriction admission). Condition timestamps are filled in
as upstream's ``populateConditionTimestamps`` does.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

from pyk8s.api.certificates import (
    KUBE_APISERVER_CLIENT,
    CSRError,
    parse_request,
    request_pem,
)
from pyk8s.api.errors import FieldError
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.validation.certificates import Options, update_csr
from pyk8s.apiserver.admission import CREATE, UPDATE, Attributes, forbidden
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import Decision, RequestAttributes
from pyk8s.apiserver.strategies.base import JSON, Strategy

__all__ = ["CSRStrategy", "CSRWriteCheck"]

GROUP = "certificates.k8s.io"
MASTERS = "system:masters"

Authorize = Callable[[UserInfo, RequestAttributes], Awaitable[Decision]]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CSRStrategy(Strategy):
    """Upstream's csrStrategy, csrStatusStrategy and csrApprovalStrategy."""

    def prepare_for_update(self, new: JSON, old: JSON) -> None:
        new["spec"] = copy_json(old.get("spec") or {})
        if "status" in old:
            new["status"] = copy_json(old["status"])
        else:
            new.pop("status", None)

    def prepare_for_subresource_update(self, new: JSON, old: JSON, subresource: str) -> JSON:
        if subresource != "approval":
            return super().prepare_for_subresource_update(new, old, subresource)
        out = copy_json(old)
        out["metadata"] = new.get("metadata") or out["metadata"]
        conditions = (new.get("status") or {}).get("conditions")
        status = out.setdefault("status", {})
        if conditions:
            status["conditions"] = conditions
        else:
            status.pop("conditions", None)
        return out

    def validate_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return update_csr(new, old)

    def validate_status_update(self, new: JSON, old: JSON) -> list[FieldError]:
        return update_csr(new, old, Options(allow_certificate=True))

    def validate_subresource_update(
        self, new: JSON, old: JSON, subresource: str
    ) -> list[FieldError]:
        if subresource == "approval":
            return update_csr(new, old, Options(allow_approval=True))
        return super().validate_subresource_update(new, old, subresource)


def _populate_timestamps(new: JSON, old: JSON | None) -> None:
    """Upstream's populateConditionTimestamps: missing lastUpdateTime is now; a missing
    lastTransitionTime is the old condition's when its status did not change, else now."""
    now = _now()
    before = {
        c.get("type"): c
        for c in ((old or {}).get("status") or {}).get("conditions") or ()
        if isinstance(c, dict)
    }
    for c in (new.get("status") or {}).get("conditions") or ():
        if not isinstance(c, dict):
            continue
        c.setdefault("lastUpdateTime", now)
        if not c.get("lastTransitionTime"):
            prev = before.get(c.get("type"))
            same = prev is not None and prev.get("status") == c.get("status")
            c["lastTransitionTime"] = (
                prev.get("lastTransitionTime") if same and prev is not None else None
            ) or now


def _signer_names(signer: str) -> tuple[str, str]:
    domain = signer.split("/", 1)[0]
    return signer, f"{domain}/*"


class CSRWriteCheck:
    """Fills the requester in on create and authorizes approving and signing (module
    docstring); runs before admission, as upstream's PrepareForCreate and its
    certificates admission plugins see the request."""

    def __init__(self, authorize: Authorize) -> None:
        self._authorize = authorize

    async def __call__(self, attrs: Attributes) -> None:
        obj = attrs.obj
        if obj is None:
            return
        if attrs.operation == CREATE:
            self._fill_requester(obj, attrs.user)
            obj.pop("status", None)
            self._restrict_subject(attrs, obj)
            return
        if attrs.operation != UPDATE:
            return
        old = attrs.old or {}
        signer = str((old.get("spec") or {}).get("signerName") or "")
        if attrs.subresource == "approval":
            if self._conditions(obj) != self._conditions(old):
                await self._require(attrs, "approve", signer)
        elif attrs.subresource == "status":
            new_cert = (obj.get("status") or {}).get("certificate") or ""
            if new_cert and new_cert != ((old.get("status") or {}).get("certificate") or ""):
                await self._require(attrs, "sign", signer)
        _populate_timestamps(obj, old)

    @staticmethod
    def _conditions(obj: JSON) -> list[Any]:
        return [
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in (obj.get("status") or {}).get("conditions") or ()
            if isinstance(c, dict)
        ]

    @staticmethod
    def _fill_requester(obj: JSON, user: UserInfo) -> None:
        spec = obj.setdefault("spec", {})
        for key in ("username", "uid", "groups", "extra"):
            spec.pop(key, None)
        spec["username"] = user.name
        if user.uid:
            spec["uid"] = user.uid
        if user.groups:
            spec["groups"] = list(user.groups)
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}

    @staticmethod
    def _restrict_subject(attrs: Attributes, obj: JSON) -> None:
        if (obj.get("spec") or {}).get("signerName") != KUBE_APISERVER_CLIENT:
            return
        try:
            parsed = parse_request(request_pem(obj))
        except CSRError:
            return  # validation reports it
        if MASTERS in parsed.organizations:
            raise forbidden(
                attrs, f"use of {KUBE_APISERVER_CLIENT} signer with {MASTERS} group is not allowed"
            )

    async def _require(self, attrs: Attributes, verb: str, signer: str) -> None:
        for name in _signer_names(signer):
            decision = await self._authorize(
                attrs.user,
                RequestAttributes(
                    verb=verb, api_group=GROUP, resource="signers", name=name, api_version="v1"
                ),
            )
            if decision.allowed:
                return
        raise forbidden(attrs, f'user not permitted to {verb} requests with signerName "{signer}"')
