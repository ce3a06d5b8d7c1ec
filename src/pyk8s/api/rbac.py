"""ClusterRole aggregation: the rules an ``aggregationRule`` gathers.

Why in ``api``: the clusterrole-aggregation controller computes it to keep aggregated
ClusterRoles current, and the API server computes it once to serve the bootstrap
``admin``/``edit``/``view`` roles filled in before any controller runs; both must agree
to the rule, or the controller would rewrite every bootstrap role at its first sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from pyk8s.api.selectors import SelectorError, label_selector_from_dict

__all__ = ["aggregated_rules"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]


def aggregated_rules(role: Obj, roles: Iterable[Obj]) -> list[Obj]:
    """Upstream's algorithm: for each of ``role``'s selectors in order, the rules of the
    matching ClusterRoles of ``roles`` (not ``role`` itself) in name order, each rule once.
    """
    name = role["metadata"]["name"]
    others = sorted(roles, key=lambda r: str(r["metadata"]["name"]))
    out: list[Obj] = []
    for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or ():
        try:
            matches = label_selector_from_dict(selector).matches
        except SelectorError as err:
            log.warning("clusterrole %s: bad aggregation selector: %s", name, err)
            continue
        for other in others:
            meta = other.get("metadata") or {}
            if meta.get("name") == name or not matches(meta.get("labels") or {}):
                continue
            for rule in other.get("rules") or ():
                if rule not in out:
                    out.append(rule)
    return out
