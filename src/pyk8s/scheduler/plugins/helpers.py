"""Matching rules several plugins share: node selector terms against nodes, pod affinity
terms against pods. (Tolerations against taints live in :mod:`pyk8s.api.taints`.)"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyk8s.api.selectors import LabelSelector, label_selector_from_dict

Obj = dict[str, Any]


def _int(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None


def match_expression(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = str(expr.get("key", ""))
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        if key not in labels or len(values) != 1:
            return False
        have, want = _int(labels[key]), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def match_term(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm: all its expressions and fields match. An empty term matches
    nothing (upstream)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not all(match_expression(e, labels) for e in exprs):
        return False
    field_values = {"metadata.name": str(meta.get("name", ""))}
    return all(match_expression(f, field_values) for f in fields)


def match_terms(terms: Iterable[Mapping[str, Any]], node: Mapping[str, Any]) -> bool:
    """NodeSelectorTerms are ORed."""
    return any(match_term(t, node) for t in terms)


# ---------------------------------------------------------------------- pods and terms


def pod_labels(pod: Mapping[str, Any]) -> Mapping[str, str]:
    """The pod's labels, not copied (matched against selectors once per pod per cycle)."""
    labels: Mapping[str, str] = (pod.get("metadata") or {}).get("labels") or {}
    return labels


def pod_namespace(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("namespace") or "")


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


@dataclass(frozen=True)
class AffinityTerm:
    """A PodAffinityTerm (upstream's ``framework.AffinityTerm``): the namespaces it looks
    at (None: all), its selector, its topology key and weight. An incoming pod's terms
    have their namespaceSelector resolved into ``namespaces``; a placed pod's terms keep
    it as ``namespace_selector``, judged against the labels of the namespace of the pod
    matched (upstream's ``AffinityTerm.Matches``), so they stay valid while namespace
    labels change."""

    namespaces: frozenset[str] | None
    selector: LabelSelector
    topology_key: str
    weight: int = 0
    namespace_selector: LabelSelector | None = None

    def matches(
        self, pod: Mapping[str, Any], namespace_labels: Mapping[str, str] | None = None
    ) -> bool:
        """``pod`` is in the term's namespaces and its labels match (``namespace_labels``:
        those of the pod's namespace, for a kept namespaceSelector)."""
        if self.namespaces is not None and pod_namespace(pod) not in self.namespaces:
            sel = self.namespace_selector
            if sel is None or namespace_labels is None or not sel.matches(namespace_labels):
                return False
        return self.selector.matches(pod_labels(pod))


def affinity_term(
    term: Mapping[str, Any],
    owner: Mapping[str, Any],
    weight: int = 0,
    namespace_labels: Callable[[], Mapping[str, Mapping[str, str]]] | None = None,
    *,
    resolve: bool = True,
) -> AffinityTerm:
    """``term`` of ``owner``: no namespaces and no namespaceSelector means the owner's own
    namespace; an empty namespaceSelector means every namespace. A non-empty
    namespaceSelector is resolved into namespaces (with ``namespace_labels``), or with
    ``resolve=False`` kept on the term."""
    names = {str(n) for n in term.get("namespaces") or []}
    ns_sel = term.get("namespaceSelector")
    namespaces: frozenset[str] | None
    kept: LabelSelector | None = None
    if ns_sel is None:
        namespaces = frozenset(names or {pod_namespace(owner)})
    else:
        sel = label_selector_from_dict(ns_sel)
        if sel.empty:
            namespaces = None
        elif not resolve:
            namespaces, kept = frozenset(names), sel
        else:
            labels = namespace_labels() if namespace_labels is not None else {}
            names |= {ns for ns, lb in labels.items() if sel.matches(lb)}
            namespaces = frozenset(names)
    return AffinityTerm(
        namespaces,
        label_selector_from_dict(term.get("labelSelector")),
        str(term.get("topologyKey") or ""),
        weight,
        kept,
    )


def required_terms(
    pod: Mapping[str, Any],
    kind: str,
    namespace_labels: Callable[[], Mapping[str, Mapping[str, str]]] | None = None,
    *,
    resolve: bool = True,
) -> list[AffinityTerm]:
    """The required terms of ``kind`` (podAffinity / podAntiAffinity) of ``pod``."""
    section = (((pod.get("spec") or {}).get("affinity") or {}).get(kind)) or {}
    return [
        affinity_term(t, pod, 0, namespace_labels, resolve=resolve)
        for t in section.get("requiredDuringSchedulingIgnoredDuringExecution") or []
    ]


def preferred_terms(
    pod: Mapping[str, Any],
    kind: str,
    namespace_labels: Callable[[], Mapping[str, Mapping[str, str]]] | None = None,
    *,
    resolve: bool = True,
) -> list[AffinityTerm]:
    section = (((pod.get("spec") or {}).get("affinity") or {}).get(kind)) or {}
    out = []
    for wt in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        weight = int(wt.get("weight") or 0)
        if weight:
            out.append(
                affinity_term(
                    wt.get("podAffinityTerm") or {}, pod, weight, namespace_labels, resolve=resolve
                )
            )
    return out
