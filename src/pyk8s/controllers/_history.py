"""ControllerRevisions: the template history StatefulSets and DaemonSets keep.

Upstream's ``pkg/controller/history``: each distinct pod template a controller has rolled
out is snapshotted into an ``apps/v1`` ControllerRevision owned by the controller, named
``<owner>-<hash>`` (fnv-32a of the revision data, plus the collisionCount when set, encoded
with upstream's safe alphabet) and numbered (``revision``: max + 1 for a new template; a
template rolled back to gets its old revision renumbered). ``kubectl rollout history``
reads them. The revision data is the strategic-merge patch that replaces the template:
``{"spec": {"template": {..., "$patch": "replace"}}}``.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

Obj = dict[str, Any]

#: label on every ControllerRevision holding its hash (upstream's ControllerRevisionHashLabel)
REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
#: label on pods naming the revision they were made from
POD_REVISION_LABEL = "controller-revision-hash"

# upstream's rand.SafeEncodeString alphabet: no vowels, no look-alike characters
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in s)


def template_patch(owner: Obj) -> Obj:
    """The revision data for ``owner``'s current pod template."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def hash_revision(data: Obj, collision_count: int | None) -> str:
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def new_revision(
    owner: Obj,
    owner_ref: Obj,
    template_labels: dict[str, str],
    revision: int,
    collision_count: int | None,
) -> Obj:
    """An unsaved ControllerRevision for ``owner``'s template (history.NewControllerRevision)."""
    data = template_patch(owner)
    h = hash_revision(data, collision_count)
    labels = dict(template_labels)
    labels[REVISION_HASH_LABEL] = h
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{owner['metadata']['name']}-{h}",
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [owner_ref],
        },
        "data": data,
        "revision": revision,
    }


def revision_hash(rev: Obj) -> str:
    return str(((rev.get("metadata") or {}).get("labels") or {}).get(REVISION_HASH_LABEL, ""))


def equal_revision(a: Obj, b: Obj) -> bool:
    """Same template: the data is what counts (upstream compares hash label and raw data)."""
    return bool(_normalise(a.get("data")) == _normalise(b.get("data")))


def _normalise(data: Any) -> Any:
    return orjson.loads(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)) if data else data


def revision_number(rev: Obj) -> int:
    return int(rev.get("revision") or 0)


def sort_revisions(revs: list[Obj]) -> list[Obj]:
    return sorted(
        revs,
        key=lambda r: (
            revision_number(r),
            (r.get("metadata") or {}).get("creationTimestamp") or "",
            (r.get("metadata") or {}).get("name") or "",
        ),
    )


def template_from_revision(rev: Obj) -> Obj:
    """The pod template a revision holds (without the ``$patch`` directive)."""
    template = copy.deepcopy(((rev.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template
