"""CertificateSigningRequests: upstream's three strategies.

Why here: a CSR is written by three parties through three doors, and each door may change
only its part (upstream's pkg/registry/certificates):

* the main resource: a requester creates it; ``spec.username/uid/groups/extra`` are
  filled from the authenticated requester, never from the body; later updates can
  change metadata only (spec and status are carried over);
* ``/approval``: an approver adds Approved or Denied (only ``status.conditions`` moves);
* ``/status``: a signer sets ``status.certificate`` (once approved) and the Failed
  condition.

Who may approve and sign, per signer, and the ``system:masters`` subject restriction are
admission plugins (:mod:`pyk8s.apiserver.admission.certificates`). Condition timestamps
are filled in as upstream's ``populateConditionTimestamps`` does.
"""

from __future__ import annotations

import datetime

from pyk8s.api.errors import FieldError
from pyk8s.api.jsoncopy import copy_json
from pyk8s.api.validation.certificates import Options, update_csr
from pyk8s.apiserver.admission import CREATE, UPDATE, Attributes
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.strategies.base import JSON, Strategy

__all__ = ["CSRStrategy", "CSRWriteCheck"]


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


class CSRWriteCheck:
    """Fills the requester in on create (upstream's PrepareForCreate) and the condition
    timestamps on update; runs before admission, which then sees the request as
    upstream's certificates plugins do."""

    async def __call__(self, attrs: Attributes) -> None:
        obj = attrs.obj
        if obj is None:
            return
        if attrs.operation == CREATE:
            self._fill_requester(obj, attrs.user)
            obj.pop("status", None)
        elif attrs.operation == UPDATE:
            _populate_timestamps(obj, attrs.old or {})

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
