"""The smaller API groups: RBAC, leases, PDBs, HPAs, ingress, network policy, endpoint
slices, storage and priority classes.

These get upstream's rules where users meet them (RBAC rules need verbs; a binding's
``roleRef`` never changes; an Ingress path needs a ``pathType``; a PDB sets one of
``minAvailable``/``maxUnavailable``), and a lighter touch elsewhere.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pyk8s.api import errors
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.api.validation import names
from pyk8s.api.validation._util import (
    JSON,
    Errs,
    child,
    d,
    equal,
    i,
    idx,
    immutable,
    is_int,
    lst,
    s,
    smap,
)
from pyk8s.api.validation.apps import (
    is_not_more_than_100_percent,
    validate_positive_int_or_percent,
)
from pyk8s.api.validation.meta import (
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
    validate_qualified_name,
)
from pyk8s.api.validation.pods import PROTOCOLS, validate_port_num_or_name

RBAC_GROUP = "rbac.authorization.k8s.io"


def _meta(obj: JSON) -> JSON:
    return d(obj.get("metadata"))


# ---------------------------------------------------------------- RBAC


def _policy_rule(rule: JSON, namespaced: bool, path: str) -> Errs:
    errs: Errs = []
    if not lst(rule.get("verbs")):
        errs.append(errors.required(child(path, "verbs"), "verbs must contain at least one value"))
    urls = GoStringSlice(s(u) for u in lst(rule.get("nonResourceURLs")))  # a []string upstream
    if urls:
        if namespaced:
            errs.append(
                errors.invalid(
                    child(path, "nonResourceURLs"),
                    urls,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if (
            lst(rule.get("apiGroups"))
            or lst(rule.get("resources"))
            or lst(rule.get("resourceNames"))
        ):
            errs.append(
                errors.invalid(
                    child(path, "nonResourceURLs"),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return errs
    if not lst(rule.get("apiGroups")):
        errs.append(
            errors.required(
                child(path, "apiGroups"), "resource rules must supply at least one api group"
            )
        )
    if not lst(rule.get("resources")):
        errs.append(
            errors.required(
                child(path, "resources"), "resource rules must supply at least one resource"
            )
        )
    return errs


def create_role(obj: JSON, namespaced: bool) -> Errs:
    errs = validate_object_meta(_meta(obj), namespaced, names.is_valid_path_segment_name)
    for n, rule in enumerate(lst(obj.get("rules"))):
        errs += _policy_rule(d(rule), namespaced, f"rules[{n}]")
    agg = obj.get("aggregationRule")
    if not namespaced and isinstance(agg, dict):
        sels = lst(agg.get("clusterRoleSelectors"))
        if not sels:
            errs.append(
                errors.required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                )
            )
        for n, sel in enumerate(sels):
            errs += validate_label_selector(sel, f"aggregationRule.clusterRoleSelectors[{n}]")
        # rules may be set: the clusterrole-aggregation controller writes them
    return errs


def update_role(new: JSON, old: JSON, namespaced: bool) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + create_role(new, namespaced)


def _subject(sub: JSON, namespaced: bool, path: str) -> Errs:
    errs: Errs = []
    name, kind, group = s(sub.get("name")), s(sub.get("kind")), s(sub.get("apiGroup"))
    if not name:
        errs.append(errors.required(child(path, "name")))
    if kind == "ServiceAccount":
        if name:
            errs += [
                errors.invalid(child(path, "name"), name, m)
                for m in names.name_is_dns_subdomain(name, False)
            ]
        if group:
            errs.append(errors.not_supported(child(path, "apiGroup"), group, [""]))
        if not namespaced and not s(sub.get("namespace")):
            errs.append(errors.required(child(path, "namespace")))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            errs.append(errors.not_supported(child(path, "apiGroup"), group, [RBAC_GROUP]))
    else:
        errs.append(
            errors.not_supported(child(path, "kind"), kind, ["ServiceAccount", "User", "Group"])
        )
    return errs


def create_binding(obj: JSON, namespaced: bool) -> Errs:
    errs = validate_object_meta(_meta(obj), namespaced, names.is_valid_path_segment_name)
    ref = d(obj.get("roleRef"))
    if s(ref.get("apiGroup")) != RBAC_GROUP:
        errs.append(errors.not_supported("roleRef.apiGroup", s(ref.get("apiGroup")), [RBAC_GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if s(ref.get("kind")) not in kinds:
        errs.append(errors.not_supported("roleRef.kind", s(ref.get("kind")), kinds))
    rname = s(ref.get("name"))
    if not rname:
        errs.append(errors.required("roleRef.name"))
    else:
        errs += [
            errors.invalid("roleRef.name", rname, m)
            for m in names.is_valid_path_segment_name(rname)
        ]
    for n, sub in enumerate(lst(obj.get("subjects"))):
        errs += _subject(d(sub), namespaced, f"subjects[{n}]")
    return errs


def update_binding(new: JSON, old: JSON, namespaced: bool) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    if not equal(new.get("roleRef"), old.get("roleRef")):
        errs.append(errors.invalid("roleRef", new.get("roleRef"), "cannot change roleRef"))
    return errs + create_binding(new, namespaced)


# ---------------------------------------------------------------- coordination


def create_lease(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    spec = d(obj.get("spec"))
    lds = spec.get("leaseDurationSeconds")
    if is_int(lds) and lds <= 0:
        errs.append(errors.invalid("spec.leaseDurationSeconds", lds, "must be greater than 0"))
    lt = spec.get("leaseTransitions")
    if is_int(lt) and lt < 0:
        errs.append(
            errors.invalid("spec.leaseTransitions", lt, "must be greater than or equal to 0")
        )
    return errs


def update_lease(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + create_lease(new)


# ---------------------------------------------------------------- policy


def create_pdb(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    spec = d(obj.get("spec"))
    mina, maxu = spec.get("minAvailable"), spec.get("maxUnavailable")
    if mina is not None and maxu is not None:
        errs.append(
            errors.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set")
        )
    for f, v in (("minAvailable", mina), ("maxUnavailable", maxu)):
        if v is not None:
            errs += validate_positive_int_or_percent(v, f"spec.{f}")
            errs += is_not_more_than_100_percent(v, f"spec.{f}")
    errs += validate_label_selector(spec.get("selector"), "spec.selector")
    pol = spec.get("unhealthyPodEvictionPolicy")
    if isinstance(pol, str) and pol not in ("AlwaysAllow", "IfHealthyBudget"):
        errs.append(
            errors.not_supported(
                "spec.unhealthyPodEvictionPolicy", pol, ["AlwaysAllow", "IfHealthyBudget"]
            )
        )
    return errs


def update_pdb(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + create_pdb(new)


# ---------------------------------------------------------------- autoscaling


def _scale_target(ref: Any, path: str) -> Errs:
    ref = d(ref)
    errs: Errs = []
    for f in ("kind", "name"):
        v = s(ref.get(f))
        if not v:
            errs.append(errors.required(child(path, f)))
        else:
            errs += [
                errors.invalid(child(path, f), v, m) for m in names.is_valid_path_segment_name(v)
            ]
    return errs


_METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]


def create_hpa(obj: JSON, version: str) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    spec = d(obj.get("spec"))
    mn, mx = spec.get("minReplicas"), i(spec.get("maxReplicas"))
    if is_int(mn) and mn < 1:
        errs.append(errors.invalid("spec.minReplicas", mn, "must be greater than or equal to 1"))
    if mx < 1:
        errs.append(errors.invalid("spec.maxReplicas", mx, "must be greater than 0"))
    if is_int(mn) and mx < mn:
        errs.append(
            errors.invalid("spec.maxReplicas", mx, "must be greater than or equal to `minReplicas`")
        )
    errs += _scale_target(spec.get("scaleTargetRef"), "spec.scaleTargetRef")
    if version == "v1":
        cpu = spec.get("targetCPUUtilizationPercentage")
        if is_int(cpu) and cpu < 1:
            errs.append(
                errors.invalid(
                    "spec.metrics[0].resource.target.averageUtilization",
                    cpu,
                    "must be greater than 0",
                )
            )
        return errs
    for n, m in enumerate(lst(spec.get("metrics"))):
        t = s(d(m).get("type"))
        if t not in _METRIC_TYPES:
            errs.append(
                errors.invalid(
                    f"spec.metrics[{n}].type",
                    t,
                    "must be either "
                    "'ContainerResource', 'External', 'Object', 'Pods' or "
                    "'Resource'",
                )
            )
    return errs


def update_hpa(new: JSON, old: JSON, version: str) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + create_hpa(new, version)


# ---------------------------------------------------------------- networking

_INVALID_PATH_SEQUENCES = ["//", "/./", "/../", "%2f", "%2F"]
_INVALID_PATH_SUFFIXES = ["/..", "/."]
_PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]


def _ingress_backend(backend: JSON, path: str) -> Errs:
    has_res, has_svc = (
        isinstance(backend.get("resource"), dict),
        isinstance(backend.get("service"), dict),
    )
    if has_res and has_svc:
        return [errors.invalid(path, "", "cannot set both resource and service backends")]
    if has_res:
        res = d(backend["resource"])
        errs: Errs = []
        if not s(res.get("kind")):
            errs.append(errors.required(f"{path}.resource.kind"))
        if not s(res.get("name")):
            errs.append(errors.required(f"{path}.resource.name"))
        return errs
    if not has_svc:
        return [errors.invalid(path, "", "resource or service backend is required")]
    svc = d(backend["service"])
    errs = []
    name = s(svc.get("name"))
    if not name:
        errs.append(errors.required(f"{path}.service.name"))
    else:
        errs += [
            errors.invalid(f"{path}.service.name", name, m)
            for m in names.name_is_dns1035_label(name, False)
        ]
    port = d(svc.get("port"))
    pname, pnum = s(port.get("name")), i(port.get("number"))
    if pname and pnum:
        errs.append(errors.invalid(path, "", "cannot set both port name & port number"))
    elif pname:
        errs += [
            errors.invalid(f"{path}.service.port.name", pname, m)
            for m in names.is_valid_port_name(pname)
        ]
    elif pnum:
        errs += [
            errors.invalid(f"{path}.service.port.number", pnum, m)
            for m in names.is_valid_port_num(pnum)
        ]
    else:
        errs.append(errors.required(path, "port name or number is required"))
    return errs


def _host(host: str, path: str) -> Errs:
    if "*" in host:
        return [errors.invalid(path, host, m) for m in names.is_wildcard_dns1123_subdomain(host)]
    return [errors.invalid(path, host, m) for m in names.is_dns1123_subdomain(host)]


def _ingress_spec(spec: JSON) -> Errs:
    errs: Errs = []
    rules = lst(spec.get("rules"))
    if not rules and not isinstance(spec.get("defaultBackend"), dict):
        errs.append(
            errors.invalid(
                "spec", rules or None, "either `defaultBackend` or `rules` must be specified"
            )
        )
    if isinstance(spec.get("defaultBackend"), dict):
        errs += _ingress_backend(spec["defaultBackend"], "spec.defaultBackend")
    for n, rule in enumerate(rules):
        rule = d(rule)
        rp = f"spec.rules[{n}]"
        host = s(rule.get("host"))
        if host:
            if names.is_valid_ip(host):
                errs.append(
                    errors.invalid(f"{rp}.host", host, "must be a DNS name, not an IP address")
                )
            errs += _host(host, f"{rp}.host")
        http = rule.get("http")
        if not isinstance(http, dict):
            continue
        paths = lst(http.get("paths"))
        if not paths:
            errs.append(errors.required(f"{rp}.http.paths"))
        for j, p in enumerate(paths):
            p = d(p)
            pp = f"{rp}.http.paths[{j}]"
            pt = p.get("pathType")
            value = s(p.get("path"))
            if not isinstance(pt, str):
                errs.append(errors.required(f"{pp}.pathType", "pathType must be specified"))
                continue
            if pt in ("Exact", "Prefix"):
                if not value.startswith("/"):
                    errs.append(errors.invalid(f"{pp}.path", value, "must be an absolute path"))
                if value:
                    for seq in _INVALID_PATH_SEQUENCES:
                        if seq in value:
                            errs.append(
                                errors.invalid(f"{pp}.path", value, f"must not contain '{seq}'")
                            )
                    for suf in _INVALID_PATH_SUFFIXES:
                        if value.endswith(suf):
                            errs.append(
                                errors.invalid(f"{pp}.path", value, f"cannot end with '{suf}'")
                            )
            elif pt == "ImplementationSpecific":
                if value and not value.startswith("/"):
                    errs.append(errors.invalid(f"{pp}.path", value, "must be an absolute path"))
            else:
                errs.append(errors.not_supported(f"{pp}.pathType", pt, _PATH_TYPES))
            errs += _ingress_backend(d(p.get("backend")), f"{pp}.backend")
    for n, tls in enumerate(lst(spec.get("tls"))):
        tls = d(tls)
        for j, host in enumerate(lst(tls.get("hosts"))):
            errs += _host(s(host), f"spec.tls[{n}].hosts[{j}]")
        sn = s(tls.get("secretName"))
        if sn:
            errs += [
                errors.invalid(f"spec.tls[{n}].secretName", sn, m)
                for m in names.name_is_dns_subdomain(sn, False)
            ]
    icn = spec.get("ingressClassName")
    if isinstance(icn, str):
        errs += [
            errors.invalid("spec.ingressClassName", icn, m)
            for m in names.name_is_dns_subdomain(icn, False)
        ]
    return errs


def create_ingress(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    return errs + _ingress_spec(d(obj.get("spec")))


def update_ingress(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + _ingress_spec(d(new.get("spec")))


def create_ingress_class(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), False, names.name_is_dns_subdomain)
    ctrl = s(d(obj.get("spec")).get("controller"))
    if len(ctrl) > 250:
        errs.append(errors.too_long("spec.controller", 250))
    if not ctrl:
        errs.append(errors.required("spec.controller"))
    else:
        errs += [
            errors.invalid("spec.controller", ctrl, m) for m in names.is_domain_prefixed_path(ctrl)
        ]
    return errs


def update_ingress_class(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    errs += immutable(
        d(new.get("spec")).get("controller"),
        d(old.get("spec")).get("controller"),
        "spec.controller",
    )
    return errs + create_ingress_class(new)


def _np_ports(ports: Any, path: str) -> Errs:
    errs: Errs = []
    for n, port in enumerate(lst(ports)):
        port = d(port)
        p = idx(path, n)
        proto = port.get("protocol")
        if isinstance(proto, str) and proto not in PROTOCOLS:
            errs.append(errors.not_supported(f"{p}.protocol", proto, PROTOCOLS))
        if port.get("port") is not None:
            errs += validate_port_num_or_name(port.get("port"), f"{p}.port")
        end = port.get("endPort")
        if is_int(end):
            if port.get("port") is None:
                errs.append(
                    errors.required(f"{p}.port", "must specify port when endPort is specified")
                )
            elif isinstance(port.get("port"), str):
                errs.append(
                    errors.invalid(
                        f"{p}.endPort", end, "may not be specified when `port` is non-numeric"
                    )
                )
            elif end < i(port.get("port")):
                errs.append(
                    errors.invalid(f"{p}.endPort", end, "must be greater than or equal to `port`")
                )
    return errs


def _np_peers(peers: Any, path: str) -> Errs:
    errs: Errs = []
    for n, peer in enumerate(lst(peers)):
        peer = d(peer)
        p = idx(path, n)
        count = sum(
            1 for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None
        )
        if count == 0:
            errs.append(errors.required(p, "must specify a peer"))
        elif peer.get("ipBlock") is not None and count > 1:
            errs.append(errors.forbidden(p, "may not specify both ipBlock and another peer"))
        errs += validate_label_selector(peer.get("podSelector"), f"{p}.podSelector")
        errs += validate_label_selector(peer.get("namespaceSelector"), f"{p}.namespaceSelector")
        block = peer.get("ipBlock")
        if isinstance(block, dict):
            cidr = s(block.get("cidr"))
            if not cidr:
                errs.append(errors.required(f"{p}.ipBlock.cidr"))
            elif not names.is_valid_cidr(cidr):
                errs.append(errors.invalid(f"{p}.ipBlock.cidr", cidr, names.CIDR_MSG))
            for j, ex in enumerate(lst(block.get("except"))):
                if not names.is_valid_cidr(s(ex)):
                    errs.append(errors.invalid(f"{p}.ipBlock.except[{j}]", s(ex), names.CIDR_MSG))
                elif names.is_valid_cidr(cidr) and not _strict_subnet(s(ex), cidr):
                    errs.append(
                        errors.invalid(
                            f"{p}.ipBlock.except[{j}]", s(ex), "must be a strict subset of `cidr`"
                        )
                    )
    return errs


def _strict_subnet(inner: str, outer: str) -> bool:
    """Upstream's ipBlock check: ``outer`` holds ``inner``'s address with a shorter prefix."""
    try:
        a = ipaddress.ip_network(inner, strict=False)
        b = ipaddress.ip_network(outer, strict=False)
    except ValueError:
        return True  # reported as an invalid CIDR instead
    return a.version == b.version and a.network_address in b and b.prefixlen < a.prefixlen


def create_network_policy(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    spec = d(obj.get("spec"))
    errs += validate_label_selector(spec.get("podSelector"), "spec.podSelector")
    for n, rule in enumerate(lst(spec.get("ingress"))):
        rule = d(rule)
        errs += _np_ports(rule.get("ports"), f"spec.ingress[{n}].ports")
        errs += _np_peers(rule.get("from"), f"spec.ingress[{n}].from")
    for n, rule in enumerate(lst(spec.get("egress"))):
        rule = d(rule)
        errs += _np_ports(rule.get("ports"), f"spec.egress[{n}].ports")
        errs += _np_peers(rule.get("to"), f"spec.egress[{n}].to")
    types = [s(t) for t in lst(spec.get("policyTypes"))]
    for n, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            errs.append(errors.not_supported(f"spec.policyTypes[{n}]", t, ["Ingress", "Egress"]))
    if len(types) > 2:
        errs.append(
            errors.invalid("spec.policyTypes", types, "may not specify more than two policyTypes")
        )
    return errs


def update_network_policy(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + create_network_policy(new)


# ---------------------------------------------------------------- discovery

_ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]


def create_endpoint_slice(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    at = s(obj.get("addressType"))
    if not at:
        errs.append(errors.required("addressType"))
    elif at not in _ADDRESS_TYPES:
        errs.append(errors.not_supported("addressType", at, _ADDRESS_TYPES))
    endpoints = lst(obj.get("endpoints"))
    if len(endpoints) > 1000:
        errs.append(
            errors.FieldError(
                errors.FieldErrorType.TOO_MANY,
                "endpoints",
                len(endpoints),
                "must have at most 1000 items",
            )
        )
    for n, ep in enumerate(endpoints):
        ep = d(ep)
        addrs = [s(a) for a in lst(ep.get("addresses"))]
        ap = f"endpoints[{n}].addresses"
        if not addrs:
            errs.append(errors.required(ap, "must contain at least 1 address"))
        for j, a in enumerate(addrs):
            if at == "IPv4":
                addr = names.parse_ip(a)
                if addr is None or addr.version != 4:
                    errs.append(errors.invalid(f"{ap}[{j}]", a, "must be a valid IPv4 address"))
            elif at == "IPv6":
                addr = names.parse_ip(a)
                if addr is None or addr.version != 6:
                    errs.append(errors.invalid(f"{ap}[{j}]", a, "must be a valid IPv6 address"))
            elif at == "FQDN":
                errs += [errors.invalid(f"{ap}[{j}]", a, m) for m in names.is_dns1123_subdomain(a)]
        hn = ep.get("hostname")
        if isinstance(hn, str):
            errs += [
                errors.invalid(f"endpoints[{n}].hostname", hn, m)
                for m in names.is_dns1123_label(hn)
            ]
        nn = ep.get("nodeName")
        if isinstance(nn, str):
            errs += [
                errors.invalid(f"endpoints[{n}].nodeName", nn, m)
                for m in names.name_is_dns_subdomain(nn, False)
            ]
    seen: set[str] = set()
    for n, port in enumerate(lst(obj.get("ports"))):
        port = d(port)
        p = f"ports[{n}]"
        name = s(port.get("name"))
        if name:
            errs += [errors.invalid(f"{p}.name", name, m) for m in names.is_dns1123_label(name)]
        if name in seen:
            errs.append(errors.duplicate(f"{p}.name", name))
        seen.add(name)
        proto = port.get("protocol")
        if isinstance(proto, str) and proto not in PROTOCOLS:
            errs.append(errors.not_supported(f"{p}.protocol", proto, PROTOCOLS))
        num = port.get("port")
        if is_int(num):
            errs += [errors.invalid(f"{p}.port", num, m) for m in names.is_valid_port_num(num)]
        ap2 = port.get("appProtocol")
        if isinstance(ap2, str):
            errs += validate_qualified_name(ap2, f"{p}.appProtocol")
    return errs


def update_endpoint_slice(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old)) + create_endpoint_slice(new)
    return errs + immutable(new.get("addressType"), old.get("addressType"), "addressType")


# ---------------------------------------------------------------- storage, scheduling


def create_storage_class(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), False, names.name_is_dns_subdomain)
    prov = s(obj.get("provisioner"))
    if not prov:
        errs.append(errors.required("provisioner"))
    else:
        errs += validate_qualified_name(prov.lower(), "provisioner")
    params = smap(obj.get("parameters"))
    total = 0
    for k, v in params.items():
        if not k:
            errs.append(errors.invalid("parameters", params, "field can not be empty."))
        total += len(k) + len(v)
    if total > 256 * 1024:
        errs.append(errors.too_long("parameters", 256 * 1024))
    rp = obj.get("reclaimPolicy")
    if isinstance(rp, str) and rp and rp not in ("Delete", "Retain"):
        errs.append(errors.not_supported("reclaimPolicy", rp, ["Delete", "Retain"]))
    vbm = obj.get("volumeBindingMode")
    if isinstance(vbm, str) and vbm not in ("Immediate", "WaitForFirstConsumer"):
        errs.append(
            errors.not_supported("volumeBindingMode", vbm, ["Immediate", "WaitForFirstConsumer"])
        )
    return errs


def update_storage_class(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old)) + create_storage_class(new)
    if not equal(new.get("parameters"), old.get("parameters")):
        errs.append(errors.forbidden("parameters", "updates to parameters are forbidden."))
    if s(new.get("provisioner")) != s(old.get("provisioner")):
        errs.append(errors.forbidden("provisioner", "updates to provisioner are forbidden."))
    if (new.get("reclaimPolicy") or "Delete") != (old.get("reclaimPolicy") or "Delete"):
        errs.append(errors.forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."))
    return errs + immutable(
        new.get("volumeBindingMode"), old.get("volumeBindingMode"), "volumeBindingMode"
    )


_SYSTEM_PRIORITY = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}


def create_priority_class(obj: JSON) -> Errs:
    name = s(_meta(obj).get("name"))
    errs = validate_object_meta(_meta(obj), False, names.name_is_dns_subdomain)
    value = i(obj.get("value"))
    if name.startswith("system-"):
        why = ""
        if name not in _SYSTEM_PRIORITY:
            why = f"{name} is not a known system priority class"
        elif value != _SYSTEM_PRIORITY[name]:
            why = f"value of {name} PriorityClass must be {_SYSTEM_PRIORITY[name]}"
        elif obj.get("globalDefault") is True:
            why = f"globalDefault of {name} PriorityClass must be false"
        if why:
            errs.append(
                errors.forbidden(
                    "metadata.name",
                    "priority class names with 'system-' "
                    f"prefix are reserved for system use only. error: {why}",
                )
            )
    elif value > 1_000_000_000:
        errs.append(
            errors.forbidden(
                "value", "maximum allowed value of a user defined priority is 1000000000"
            )
        )
    pp = obj.get("preemptionPolicy")
    if isinstance(pp, str):
        if not pp:
            errs.append(errors.required("preemptionPolicy"))
        elif pp not in ("PreemptLowerPriority", "Never"):
            errs.append(
                errors.not_supported("preemptionPolicy", pp, ["PreemptLowerPriority", "Never"])
            )
    return errs


def update_priority_class(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    if new.get("value") != old.get("value"):
        errs.append(errors.forbidden("value", "may not be changed in an update."))
    return errs + immutable(
        new.get("preemptionPolicy"), old.get("preemptionPolicy"), "preemptionPolicy"
    )


def generic_meta(obj: JSON, namespaced: bool) -> Errs:
    return validate_object_meta(
        _meta(obj), namespaced, names.is_valid_path_segment_name, core=False
    )
