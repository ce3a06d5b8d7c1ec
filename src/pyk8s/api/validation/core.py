"""Core (v1) resources: Pods, Services, ConfigMaps, Secrets, Namespaces, Nodes, Events...

Each ``create_*``/``update_*`` mirrors upstream's ``Validate<Kind>`` /
``Validate<Kind>Update`` in pkg/apis/core/validation (v1.32), taking the defaulted v1
object as JSON. Where upstream's strategy rewrites the object before validating (a
Service's ``clusterIPs`` filled from ``clusterIP``), the rewrite is mirrored on a view,
never on the caller's object.
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

import orjson

from pyk8s.api import errors
from pyk8s.api.gofmt import GoStringSlice
from pyk8s.api.quantity import QuantityError, canonical, parse_quantity
from pyk8s.api.validation import names
from pyk8s.api.validation._util import (
    IMMUTABLE,
    JSON,
    Errs,
    child,
    d,
    equal,
    i,
    idx,
    immutable,
    is_int,
    key,
    lst,
    nonneg,
    s,
)
from pyk8s.api.validation.meta import (
    Selector,
    kube_finalizer_name,
    selector_mismatch,
    validate_label_selector,
    validate_labels,
    validate_object_meta,
    validate_object_meta_update,
    validate_qualified_name,
)
from pyk8s.api.validation.pods import (
    PROTOCOLS,
    PodOptions,
    validate_container_resource_name,
    validate_controller_template_spec,
    validate_pod_spec,
    validate_pod_template_spec,
    validate_port_num_or_name,
    validate_quantity_value,
    validate_resource_name,
    validate_taints,
    validate_tolerations,
)

MAX_SECRET_SIZE = 1024 * 1024

UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)"
)


def _meta(obj: JSON) -> JSON:
    return d(obj.get("metadata"))


# ---------------------------------------------------------------- pods


def _pod(obj: JSON) -> Errs:
    meta = _meta(obj)
    errs = validate_object_meta(meta, True, names.name_is_dns_subdomain)
    ann = d(meta.get("annotations"))
    if "kubernetes.io/config.mirror" in ann and not s(d(obj.get("spec")).get("nodeName")):
        errs.append(
            errors.invalid(
                key("metadata.annotations", "kubernetes.io/config.mirror"),
                s(ann["kubernetes.io/config.mirror"]),
                "must set spec.nodeName if mirror pod annotation is set",
            )
        )
    spec = d(obj.get("spec"))
    errs += validate_pod_spec(spec, "spec", PodOptions(is_pod=True, pod_name=s(meta.get("name"))))
    if not s(spec.get("serviceAccountName")):
        for vi, vol in enumerate(lst(spec.get("volumes"))):
            for si, src in enumerate(lst(d(d(vol).get("projected")).get("sources"))):
                if isinstance(d(src).get("serviceAccountToken"), dict):
                    errs.append(
                        errors.forbidden(
                            f"spec.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                            "must not be specified when serviceAccountName is not set",
                        )
                    )
    for kind in ("containers", "initContainers"):
        for n, c in enumerate(lst(spec.get(kind))):
            image = s(d(c).get("image"))
            if image != image.strip():
                errs.append(
                    errors.invalid(
                        f"spec.{kind}[{n}].image",
                        image,
                        "must not have leading or trailing whitespace",
                    )
                )
    return errs


def create_pod(obj: JSON) -> Errs:
    return _pod(obj)


def _container_updates(new: Any, old: Any, path: str) -> tuple[Errs, bool]:
    if len(lst(new)) != len(lst(old)):
        return [errors.forbidden(path, "pod updates may not add or remove containers")], True
    errs: Errs = []
    for n, c in enumerate(lst(new)):
        image = s(d(c).get("image"))
        if not image:
            errs.append(errors.required(f"{path}[{n}].image"))
        if image != image.strip():
            errs.append(
                errors.invalid(
                    f"{path}[{n}].image", image, "must not have leading or trailing whitespace"
                )
            )
    return errs, False


def _spec_diff(old: Any, new: Any, path: str = "") -> list[str]:
    """A short "-old +new" listing of what differs (upstream prints a Go cmp.Diff here)."""
    if equal(old, new):
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in list(old) + [k for k in new if k not in old]:
            out += _spec_diff(old.get(k), new.get(k), child(path, k))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for n, (a, b) in enumerate(zip(old, new, strict=True)):
            out += _spec_diff(a, b, idx(path, n))
        return out
    dump = orjson.OPT_SORT_KEYS
    return [
        f"- \t{path}: {orjson.dumps(old, option=dump).decode()}",
        f"+ \t{path}: {orjson.dumps(new, option=dump).decode()}",
    ]


def update_pod(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    errs += _pod(new)
    ns, os_ = d(new.get("spec")), d(old.get("spec"))
    for kind in ("containers", "initContainers"):
        cerrs, stop = _container_updates(ns.get(kind), os_.get(kind), f"spec.{kind}")
        errs += cerrs
        if stop:
            return errs
    new_ads, old_ads = ns.get("activeDeadlineSeconds"), os_.get("activeDeadlineSeconds")
    if is_int(new_ads):
        if new_ads < 0 or new_ads > 2**31 - 1:
            errs.append(
                errors.invalid(
                    "spec.activeDeadlineSeconds", new_ads, names.inclusive_range_error(0, 2**31 - 1)
                )
            )
            return errs
        if is_int(old_ads) and old_ads < new_ads:
            errs.append(
                errors.invalid(
                    "spec.activeDeadlineSeconds",
                    new_ads,
                    "must be less than or equal to previous value",
                )
            )
            return errs
    elif is_int(old_ads):
        errs.append(
            errors.invalid(
                "spec.activeDeadlineSeconds",
                None,
                "must not update from a positive integer to nil value",
            )
        )
    old_tol = lst(os_.get("tolerations"))
    new_tol = lst(ns.get("tolerations"))
    for ot in old_tol:
        ot_cmp = {k: v for k, v in d(ot).items() if k != "tolerationSeconds"}
        if not any(
            equal(ot_cmp, {k: v for k, v in d(nt).items() if k != "tolerationSeconds"})
            for nt in new_tol
        ):
            errs.append(
                errors.forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            )
            break
    else:
        if old_tol:
            errs += validate_tolerations(new_tol, "spec.tolerations")
    old_gates = {s(d(g).get("name")) for g in lst(os_.get("schedulingGates"))}
    for n, g in enumerate(lst(ns.get("schedulingGates"))):
        gname = s(d(g).get("name"))
        if gname not in old_gates:
            errs.append(
                errors.forbidden(
                    f"spec.schedulingGates[{n}].name",
                    f"only deletion is allowed, but found new scheduling gate '{gname}'",
                )
            )
    if equal(ns, os_):
        return errs
    munged = copy.deepcopy(ns)
    for kind in ("containers", "initContainers"):
        for c, oc in zip(lst(munged.get(kind)), lst(os_.get(kind)), strict=False):
            if isinstance(c, dict):
                c["image"] = d(oc).get("image")
    for f in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        munged.pop(f, None)
        if f in os_:
            munged[f] = os_[f]
    old_tgp = os_.get("terminationGracePeriodSeconds")
    if is_int(old_tgp) and old_tgp < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_tgp
    if old_gates:
        for f in ("nodeSelector", "affinity"):  # gated pods may gain scheduling constraints
            munged.pop(f, None)
            if f in os_:
                munged[f] = os_[f]
    if not equal(munged, os_):
        diff = "\n".join(["  core.PodSpec{", *_spec_diff(os_, munged), "  }"])
        errs.append(
            errors.forbidden(
                "spec",
                f"pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{diff}",
            )
        )
    return errs


def create_pod_template(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    return errs + validate_pod_template_spec(obj.get("template"), "template")


def update_pod_template(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    return errs + validate_pod_template_spec(new.get("template"), "template")


def create_binding(obj: JSON) -> Errs:
    errs: Errs = []
    target = d(obj.get("target"))
    tk = s(target.get("kind"))
    if tk and tk != "Node":
        errs.append(errors.not_supported("target.kind", tk, ["Node", "<empty>"]))
    if not s(target.get("name")):
        errs.append(errors.required("target.name"))
    return errs


# ---------------------------------------------------------------- replication controllers


def _rc_spec(spec: Any) -> Errs:
    spec = d(spec)
    errs = nonneg(spec.get("minReadySeconds"), "spec.minReadySeconds")
    selector = {k: s(v) for k, v in d(spec.get("selector")).items()}
    if not selector:
        errs.append(errors.required("spec.selector"))
    errs += nonneg(spec.get("replicas"), "spec.replicas")
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        errs.append(errors.required("spec.template"))
        return errs
    if selector:
        sel = Selector([(k, "In", frozenset({v})) for k, v in selector.items()])
        errs += selector_mismatch(
            sel, d(tmpl.get("metadata")).get("labels"), "spec.template.metadata.labels"
        )
    errs += validate_pod_template_spec(tmpl, "spec.template")
    return errs + validate_controller_template_spec(
        tmpl.get("spec"), "spec.template.spec", "ReplicationController"
    )


def create_replication_controller(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    return errs + _rc_spec(obj.get("spec"))


def update_replication_controller(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + _rc_spec(new.get("spec"))


# ---------------------------------------------------------------- services


def _service_view(obj: JSON, old: JSON | None) -> JSON:
    """The spec as upstream's strategy leaves it before validation (clusterIP(s) in sync)."""
    spec = copy.deepcopy(d(obj.get("spec")))
    ip, ips = s(spec.get("clusterIP")), [s(x) for x in lst(spec.get("clusterIPs"))]
    if old is not None and not ip and not ips:
        ospec = d(old.get("spec"))
        ip, ips = s(ospec.get("clusterIP")), [s(x) for x in lst(ospec.get("clusterIPs"))]
    if ip and not ips:
        ips = [ip]
    elif ips and not ip:
        ip = ips[0]
    if s(spec.get("type")) == "ExternalName" and not s(d(obj.get("spec")).get("clusterIP")):
        ip, ips = "", [s(x) for x in lst(spec.get("clusterIPs"))]
    spec["clusterIP"], spec["clusterIPs"] = ip, ips
    return spec


def _headless(spec: JSON) -> bool:
    ips = spec.get("clusterIPs")
    return isinstance(ips, list) and len(ips) == 1 and ips[0] == "None"


def _service(obj: JSON, spec: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns1035_label)
    stype = s(spec.get("type")) if "type" in spec else "ClusterIP"
    ports = lst(spec.get("ports"))
    headless = _headless(spec)
    if not ports and not headless and stype != "ExternalName":
        errs.append(errors.required("spec.ports"))
    if stype in ("LoadBalancer", "NodePort") and headless:
        errs.append(
            errors.invalid(
                "spec.clusterIPs[0]", "None", f"may not be set to 'None' for {stype} services"
            )
        )
    if stype == "ExternalName":
        if lst(spec.get("clusterIPs")):
            errs.append(
                errors.forbidden("spec.clusterIPs", "may not be set for ExternalName services")
            )
        if lst(spec.get("ipFamilies")):
            errs.append(
                errors.forbidden("spec.ipFamilies", "may not be set for ExternalName services")
            )
        if spec.get("ipFamilyPolicy") is not None:
            errs.append(
                errors.forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services")
            )
        cname = s(spec.get("externalName")).removesuffix(".")
        if cname:
            errs += [
                errors.invalid("spec.externalName", cname, m)
                for m in names.is_dns1123_subdomain(cname)
            ]
        else:
            errs.append(errors.required("spec.externalName"))
    seen_names: set[str] = set()
    for n, port in enumerate(ports):
        port = d(port)
        p = f"spec.ports[{n}]"
        pname = s(port.get("name"))
        if len(ports) > 1 and not pname:
            errs.append(errors.required(child(p, "name")))
        elif pname:
            errs += [
                errors.invalid(child(p, "name"), pname, m) for m in names.is_dns1123_label(pname)
            ]
            if pname in seen_names:
                errs.append(errors.duplicate(child(p, "name"), pname))
            else:
                seen_names.add(pname)
        num = i(port.get("port"))
        errs += [errors.invalid(child(p, "port"), num, m) for m in names.is_valid_port_num(num)]
        if "protocol" in port and port["protocol"] is not None:
            proto = s(port.get("protocol"))
            if not proto:
                errs.append(errors.required(child(p, "protocol")))
            elif proto not in PROTOCOLS:
                errs.append(errors.not_supported(child(p, "protocol"), proto, PROTOCOLS))
        if "targetPort" in port:
            errs += validate_port_num_or_name(port.get("targetPort"), child(p, "targetPort"))
        ap = port.get("appProtocol")
        if isinstance(ap, str):
            errs += validate_qualified_name(ap, child(p, "appProtocol"))
    if spec.get("selector") is not None:
        errs += validate_labels(spec.get("selector"), "spec.selector")
    if "sessionAffinity" in spec:
        sa = s(spec.get("sessionAffinity"))
        if not sa:
            errs.append(errors.required("spec.sessionAffinity"))
        elif sa not in ("ClientIP", "None"):
            errs.append(errors.not_supported("spec.sessionAffinity", sa, ["ClientIP", "None"]))
        elif sa == "None" and spec.get("sessionAffinityConfig") is not None:
            errs.append(
                errors.forbidden(
                    "spec.sessionAffinityConfig", "must not be set when session affinity is None"
                )
            )
        elif sa == "ClientIP":
            errs += _client_ip_config(spec.get("sessionAffinityConfig"))
    errs += _cluster_ips(spec, stype)
    for n, ip in enumerate(lst(spec.get("externalIPs"))):
        ip = s(ip)
        if not names.is_valid_ip(ip):
            errs.append(errors.invalid(f"spec.externalIPs[{n}]", ip, names.IP_MSG))
        else:
            errs += _non_special_ip(ip, f"spec.externalIPs[{n}]")
    if "type" in spec:
        if not stype:
            errs.append(errors.required("spec.type"))
        elif stype not in ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort"):
            errs.append(
                errors.not_supported(
                    "spec.type", stype, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
                )
            )
    if stype == "ClusterIP":
        for n, port in enumerate(ports):
            if i(d(port).get("nodePort")) != 0:
                errs.append(
                    errors.forbidden(
                        f"spec.ports[{n}].nodePort", "may not be used when `type` is 'ClusterIP'"
                    )
                )
    seen_np: set[tuple[str, int]] = set()
    seen_p: set[tuple[str, int]] = set()
    for n, port in enumerate(ports):
        port = d(port)
        proto = s(port.get("protocol")) or "TCP"
        np = i(port.get("nodePort"))
        if np:
            if (proto, np) in seen_np:
                errs.append(errors.duplicate(f"spec.ports[{n}].nodePort", np))
            seen_np.add((proto, np))
    for n, port in enumerate(ports):
        port = d(port)
        pk = (s(port.get("protocol")) or "TCP", i(port.get("port")))
        if pk in seen_p:
            errs.append(errors.duplicate(f"spec.ports[{n}]", {"port": pk[1], "protocol": pk[0]}))
        seen_p.add(pk)
    ranges = lst(spec.get("loadBalancerSourceRanges"))
    if ranges:
        if stype != "LoadBalancer":
            errs.append(
                errors.forbidden(
                    "spec.LoadBalancerSourceRanges",
                    "may only be used when `type` is 'LoadBalancer'",
                )
            )
        for n, r in enumerate(ranges):
            r = s(r).strip()
            if not names.is_valid_cidr(r):
                errs.append(
                    errors.invalid(f"spec.LoadBalancerSourceRanges[{n}]", r, names.CIDR_MSG)
                )
    if spec.get("allocateLoadBalancerNodePorts") is not None and stype != "LoadBalancer":
        errs.append(
            errors.forbidden(
                "spec.allocateLoadBalancerNodePorts",
                "may only be used when `type` is 'LoadBalancer'",
            )
        )
    external = stype in ("LoadBalancer", "NodePort") or bool(lst(spec.get("externalIPs")))
    etp = spec.get("externalTrafficPolicy")
    if isinstance(etp, str) and etp:
        if not external:
            errs.append(
                errors.invalid(
                    "spec.externalTrafficPolicy",
                    etp,
                    "may only be set for externally-accessible services",
                )
            )
        elif etp not in ("Cluster", "Local"):
            errs.append(
                errors.not_supported("spec.externalTrafficPolicy", etp, ["Cluster", "Local"])
            )
    hc = i(spec.get("healthCheckNodePort"))
    if hc and not (stype == "LoadBalancer" and etp == "Local"):
        errs.append(
            errors.invalid(
                "spec.healthCheckNodePort",
                hc,
                "may only be set when `type` "
                "is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            )
        )
    itp = spec.get("internalTrafficPolicy")
    if isinstance(itp, str) and itp not in ("Cluster", "Local"):
        errs.append(errors.not_supported("spec.internalTrafficPolicy", itp, ["Cluster", "Local"]))
    td = spec.get("trafficDistribution")
    if isinstance(td, str) and td != "PreferClose":
        errs.append(errors.not_supported("spec.trafficDistribution", td, ["PreferClose"]))
    return errs


def _client_ip_config(cfg: Any) -> Errs:
    path = "spec.sessionAffinityConfig"
    why = "when session affinity type is ClientIP"
    if not isinstance(cfg, dict):
        return [errors.required(path, why)]
    cip = cfg.get("clientIP")
    if not isinstance(cip, dict):
        return [errors.required(f"{path}.clientIP", why)]
    t = cip.get("timeoutSeconds")
    if not is_int(t):
        return [errors.required(f"{path}.clientIP.timeoutSeconds", why)]
    if t <= 0 or t > 86400:
        return [
            errors.invalid(
                f"{path}.clientIP.timeoutSeconds", t, "must be greater than 0 and less than 86400"
            )
        ]
    return []


def _non_special_ip(ip: str, path: str) -> Errs:
    addr = names.parse_ip(ip)
    if addr is None:
        return [errors.invalid(path, ip, "must be a valid IP address")]
    errs: Errs = []
    if addr.is_unspecified:
        errs.append(errors.invalid(path, ip, f"may not be unspecified ({ip})"))
    if addr.is_loopback:
        errs.append(
            errors.invalid(path, ip, "may not be in the loopback range (127.0.0.0/8, ::1/128)")
        )
    if addr.is_link_local and not addr.is_multicast:
        errs.append(
            errors.invalid(
                path, ip, "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
            )
        )
    if addr.is_multicast and (str(addr).startswith("224.0.0.") or str(addr).startswith("ff02:")):
        errs.append(
            errors.invalid(
                path, ip, "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
            )
        )
    return errs


def _cluster_ips(spec: JSON, stype: str) -> Errs:
    if stype == "ExternalName":
        return []
    errs: Errs = []
    ip, ips = s(spec.get("clusterIP")), GoStringSlice(s(x) for x in lst(spec.get("clusterIPs")))
    if ip and ips and ips[0] != ip:
        errs.append(errors.invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    families = [s(f) for f in lst(spec.get("ipFamilies"))]
    seen: set[str] = set()
    for n, fam in enumerate(families):
        if fam not in ("IPv4", "IPv6"):
            errs.append(errors.not_supported(f"spec.ipFamilies[{n}]", fam, ["IPv4", "IPv6"]))
        if fam in seen:
            errs.append(errors.duplicate(f"spec.ipFamilies[{n}]", fam))
        seen.add(fam)
    pol = spec.get("ipFamilyPolicy")
    policies = ["PreferDualStack", "RequireDualStack", "SingleStack"]
    if isinstance(pol, str) and pol not in policies:
        errs.append(errors.not_supported("spec.ipFamilyPolicy", pol, policies))
    invalid = False
    for n, x in enumerate(ips):
        if n == 0 and x == "None":
            if len(ips) > 1:
                invalid = True
                errs.append(
                    errors.invalid(
                        "spec.clusterIPs", ips, "'None' must be the first and only value"
                    )
                )
            continue
        if not names.is_valid_ip(x):
            invalid = True
            errs.append(errors.invalid(f"spec.clusterIPs[{n}]", x, names.IP_MSG))
    if len(ips) > 2:
        errs.append(errors.invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if invalid:
        return errs
    if len(ips) == 2:
        a, b = names.parse_ip(ips[0]), names.parse_ip(ips[1])
        if a is None or b is None or a.version == b.version:
            errs.append(
                errors.invalid(
                    "spec.clusterIPs", ips, "may specify no more than one IP for each IP family"
                )
            )
    if ips and ips[0] != "None":
        for n, x in enumerate(ips[: len(families)]):
            addr = names.parse_ip(x)
            v6 = addr is not None and addr.version == 6
            if families[n] == "IPv4" and v6:
                errs.append(
                    errors.invalid(
                        f"spec.clusterIPs[{n}]",
                        x,
                        f"expected an IPv4 value as indicated by `ipFamilies[{n}]`",
                    )
                )
            if families[n] == "IPv6" and not v6:
                errs.append(
                    errors.invalid(
                        f"spec.clusterIPs[{n}]",
                        x,
                        f"expected an IPv6 value as indicated by `ipFamilies[{n}]`",
                    )
                )
    return errs


def create_service(obj: JSON) -> Errs:
    return _service(obj, _service_view(obj, None))


def drop_type_dependent_fields(new: JSON, old: JSON) -> JSON:
    """Upstream's ``dropTypeDependentFields``: a type change clears what the old type needed.

    Cluster IPs, node ports and the health-check port carried over unchanged (as
    ``kubectl apply`` carries them) are dropped when the new type does not use them.
    Returns a copy of ``new``; the API server should store that copy.
    """
    out = copy.deepcopy(new)
    spec, ospec = d(out.get("spec")), d(old.get("spec"))
    ntype, otype = s(spec.get("type")) or "ClusterIP", s(ospec.get("type")) or "ClusterIP"
    same_ips = equal(spec.get("clusterIPs"), ospec.get("clusterIPs")) and s(
        spec.get("clusterIP")
    ) == s(ospec.get("clusterIP"))
    if otype != "ExternalName" and ntype == "ExternalName" and same_ips:
        for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            spec.pop(f, None)
    if otype in ("NodePort", "LoadBalancer") and ntype not in ("NodePort", "LoadBalancer"):
        old_ports = {
            (s(d(p).get("protocol")) or "TCP", i(d(p).get("port"))): d(p).get("nodePort")
            for p in lst(ospec.get("ports"))
        }
        for port in lst(spec.get("ports")):
            if isinstance(port, dict) and port.get("nodePort") is not None:
                k = (s(port.get("protocol")) or "TCP", i(port.get("port")))
                if old_ports.get(k) == port.get("nodePort"):
                    port.pop("nodePort")
    if otype == "LoadBalancer" and ntype != "LoadBalancer":
        if spec.get("healthCheckNodePort") == ospec.get("healthCheckNodePort"):
            spec.pop("healthCheckNodePort", None)
        if spec.get("allocateLoadBalancerNodePorts") == ospec.get("allocateLoadBalancerNodePorts"):
            spec.pop("allocateLoadBalancerNodePorts", None)
    if (
        ntype not in ("NodePort", "LoadBalancer")
        and not lst(spec.get("externalIPs"))
        and spec.get("externalTrafficPolicy") == ospec.get("externalTrafficPolicy")
    ):
        spec.pop("externalTrafficPolicy", None)
    return out


def update_service(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    new = drop_type_dependent_fields(new, old)
    spec, ospec = _service_view(new, old), _service_view(old, None)
    stype, otype = s(spec.get("type")) or "ClusterIP", s(ospec.get("type")) or "ClusterIP"
    if "ExternalName" not in (stype, otype) and not (_headless(spec) and _headless(ospec)):
        ips, oips = GoStringSlice(spec["clusterIPs"]), ospec["clusterIPs"]
        if len(ips) == len(oips):
            for n, x in enumerate(oips):
                if x != ips[n]:
                    errs.append(
                        errors.invalid(f"spec.clusterIPs[{n}]", ips, "may not change once set")
                    )
        elif len(oips) > len(ips):
            if not ips:
                errs.append(
                    errors.invalid("spec.clusterIPs[0]", ips, "primary clusterIP can not be unset")
                )
            elif oips and ips[0] != oips[0]:
                errs.append(errors.invalid("spec.clusterIPs[0]", ips, "may not change once set"))
        elif oips and ips[0] != oips[0]:
            errs.append(errors.invalid("spec.clusterIPs[0]", ips, "may not change once set"))
    return errs + _service(new, spec)


# ---------------------------------------------------------------- config and secrets


def _decoded_len(v: Any) -> int:
    try:
        return len(base64.b64decode(s(v), validate=False))
    except (binascii.Error, ValueError):
        return len(s(v))


def create_secret(obj: JSON) -> Errs:
    meta = _meta(obj)
    errs = validate_object_meta(meta, True, names.name_is_dns_subdomain)
    data = dict(d(obj.get("data")))
    for k in d(obj.get("stringData")):
        data.setdefault(k, "")
    total = 0
    for k, v in data.items():
        errs += [errors.invalid(key("data", k), k, m) for m in names.is_config_map_key(k)]
        total += (
            _decoded_len(v)
            if k not in d(obj.get("stringData"))
            else len(s(d(obj.get("stringData"))[k]).encode())
        )
    if total > MAX_SECRET_SIZE:
        errs.append(errors.too_long("data", MAX_SECRET_SIZE))
    stype = s(obj.get("type"))
    if stype == "kubernetes.io/service-account-token":
        if not s(d(meta.get("annotations")).get("kubernetes.io/service-account.name")):
            errs.append(
                errors.required(key("metadata.annotations", "kubernetes.io/service-account.name"))
            )
    elif stype in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        k = ".dockercfg" if stype == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if k not in data:
            errs.append(errors.required(key("data", k)))
        else:
            raw = (
                s(d(obj.get("stringData"))[k]).encode()
                if k in d(obj.get("stringData"))
                else _b64(data[k])
            )
            try:
                parsed = orjson.loads(raw)
                ok = isinstance(parsed, dict)
            except orjson.JSONDecodeError:
                ok = False
            if not ok:
                errs.append(
                    errors.invalid(
                        key("data", k),
                        "<secret contents redacted>",
                        "invalid character looking for beginning of value",
                    )
                )
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            errs.append(errors.required(key("data", "username")))
            errs.append(errors.required(key("data", "password")))
    elif stype == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey"):
            errs.append(errors.required(key("data", "ssh-privatekey")))
    elif stype == "kubernetes.io/tls":
        if "tls.crt" not in data:
            errs.append(errors.required(key("data", "tls.crt")))
        if "tls.key" not in data:
            errs.append(errors.required(key("data", "tls.key")))
    return errs


def _b64(v: Any) -> bytes:
    try:
        return base64.b64decode(s(v))
    except (binascii.Error, ValueError):
        return b""


def _immutable_data(new: JSON, old: JSON, fields: tuple[str, ...]) -> Errs:
    errs: Errs = []
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errs.append(errors.forbidden("immutable", "field is immutable when `immutable` is set"))
        for f in fields:
            if not equal(new.get(f), old.get(f)):
                errs.append(errors.forbidden(f, "field is immutable when `immutable` is set"))
    return errs


def update_secret(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    ntype, otype = s(new.get("type")) or "Opaque", s(old.get("type")) or "Opaque"
    if ntype != otype:
        errs.append(errors.invalid("type", ntype, IMMUTABLE))
    errs += _immutable_data(new, old, ("data",))
    return errs + create_secret(new)


def create_config_map(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    data, binary = d(obj.get("data")), d(obj.get("binaryData"))
    total = 0
    for k, v in data.items():
        errs += [errors.invalid(key("data", k), k, m) for m in names.is_config_map_key(k)]
        if k in binary:
            errs.append(errors.invalid(key("data", k), k, "duplicate of key present in binaryData"))
        total += len(s(v).encode())
    for k, v in binary.items():
        errs += [errors.invalid(key("binaryData", k), k, m) for m in names.is_config_map_key(k)]
        total += _decoded_len(v)
    if total > MAX_SECRET_SIZE:
        errs.append(errors.too_long("", MAX_SECRET_SIZE))
    return errs


def update_config_map(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    errs += _immutable_data(new, old, ("data", "binaryData"))
    return errs + create_config_map(new)


def create_service_account(obj: JSON) -> Errs:
    return validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)


def update_service_account(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + create_service_account(new)


# ---------------------------------------------------------------- namespaces and nodes


def create_namespace(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), False, names.name_is_dns_label)
    for f in lst(d(obj.get("spec")).get("finalizers")):
        f = s(f)
        errs += [errors.invalid("spec.finalizers", f, m) for m in names.is_qualified_name(f)]
        errs += kube_finalizer_name(f, "spec.finalizers")
    return errs


def update_namespace(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old))


def _node_resources(obj: JSON) -> Errs:
    errs: Errs = []
    status = d(obj.get("status"))
    for section in ("capacity", "allocatable"):
        for k, v in d(status.get(section)).items():
            errs += validate_quantity_value(k, v, f"status.{section}.{k}")
    return errs


def _pod_cidrs(spec: JSON) -> Errs:
    errs: Errs = []
    cidrs = [s(c) for c in lst(spec.get("podCIDRs"))]
    for n, c in enumerate(cidrs):
        if not names.is_valid_cidr(c):
            errs.append(errors.invalid(f"spec.podCIDRs[{n}]", c, names.CIDR_MSG))
    if len(cidrs) > 1 and not errs:
        fams = [names.parse_ip(c.partition("/")[0]) for c in cidrs]
        if len(cidrs) > 2 or len({f.version for f in fams if f is not None}) != 2:
            errs.append(
                errors.invalid(
                    "spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"
                )
            )
        seen: set[str] = set()
        for n, c in enumerate(cidrs):
            if c in seen:
                errs.append(errors.duplicate(f"spec.podCIDRs[{n}]", c))
            seen.add(c)
    return errs


def create_node(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), False, names.name_is_dns_subdomain)
    spec = d(obj.get("spec"))
    errs += validate_taints(spec.get("taints"), "metadata.taints")
    errs += _node_resources(obj)
    return errs + _pod_cidrs(spec)


def update_node(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old))
    errs += _node_resources(new)
    seen: list[Any] = []
    for n, addr in enumerate(lst(d(new.get("status")).get("addresses"))):
        if addr in seen:
            errs.append(errors.duplicate(f"status.addresses[{n}]", addr))
        seen.append(addr)
    spec, ospec = d(new.get("spec")), d(old.get("spec"))
    old_cidrs = [s(c) for c in lst(ospec.get("podCIDRs"))]
    new_cidrs = [s(c) for c in lst(spec.get("podCIDRs"))]
    msg = 'node updates may not change podCIDR except from "" to valid'
    if old_cidrs:
        if len(old_cidrs) != len(new_cidrs):
            errs.append(errors.forbidden("spec.podCIDRs", msg))
        else:
            errs += [
                errors.forbidden("spec.podCIDRs", msg)
                for a, b in zip(old_cidrs, new_cidrs, strict=True)
                if a != b
            ]
    opid = s(ospec.get("providerID"))
    if opid and opid != s(spec.get("providerID")):
        errs.append(
            errors.forbidden(
                "spec.providerID", 'node updates may not change providerID except from "" to valid'
            )
        )
    errs += validate_taints(spec.get("taints"), "metadata.taints")
    if s(spec.get("externalID")) != s(ospec.get("externalID")):
        errs.append(errors.forbidden("spec.externalID", "may not be updated"))
    return errs


# ---------------------------------------------------------------- endpoints


def _endpoint_port(port: JSON, require_name: bool, path: str) -> Errs:
    errs: Errs = []
    pname = s(port.get("name"))
    if require_name and not pname:
        errs.append(errors.required(child(path, "name")))
    elif pname:
        errs += [
            errors.invalid(child(path, "name"), pname, m) for m in names.is_dns1123_label(pname)
        ]
    num = i(port.get("port"))
    errs += [errors.invalid(child(path, "port"), num, m) for m in names.is_valid_port_num(num)]
    if "protocol" in port:
        proto = s(port.get("protocol"))
        if not proto:
            errs.append(errors.required(child(path, "protocol")))
        elif proto not in PROTOCOLS:
            errs.append(errors.not_supported(child(path, "protocol"), proto, PROTOCOLS))
    ap = port.get("appProtocol")
    if isinstance(ap, str):
        errs += validate_qualified_name(ap, child(path, "appProtocol"))
    return errs


def _endpoint_address(addr: JSON, path: str, allow_loopback: bool = False) -> Errs:
    ip = s(addr.get("ip"))
    errs: Errs = []
    if not names.is_valid_ip(ip):
        errs.append(errors.invalid(child(path, "ip"), ip, names.IP_MSG))
    hn = s(addr.get("hostname"))
    if hn:
        errs += [errors.invalid(child(path, "hostname"), hn, m) for m in names.is_dns1123_label(hn)]
    nn = addr.get("nodeName")
    if isinstance(nn, str):
        errs += [
            errors.invalid(child(path, "nodeName"), nn, m)
            for m in names.name_is_dns_subdomain(nn, False)
        ]
    special = _non_special_ip(ip, child(path, "ip"))
    if allow_loopback:
        special = [e for e in special if "loopback" not in e.detail]
    return errs + special


def create_endpoints(obj: JSON) -> Errs:
    meta = _meta(obj)
    errs = validate_object_meta(meta, True, names.name_is_dns_subdomain)
    # Deviation: the API server's own endpoints may be loopback (pyk8s's single-host default
    # advertises 127.0.0.1, which upstream refuses).
    loopback_ok = (s(meta.get("namespace")), s(meta.get("name"))) == ("default", "kubernetes")
    for n, ss in enumerate(lst(obj.get("subsets"))):
        ss = d(ss)
        p = f"subsets[{n}]"
        if not lst(ss.get("addresses")) and not lst(ss.get("notReadyAddresses")):
            errs.append(errors.required(p, "must specify `addresses` or `notReadyAddresses`"))
        for kind in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(lst(ss.get(kind))):
                errs += _endpoint_address(d(addr), f"{p}.{kind}[{j}]", loopback_ok)
        ports = lst(ss.get("ports"))
        for j, port in enumerate(ports):
            errs += _endpoint_port(d(port), len(ports) > 1, f"{p}.ports[{j}]")
    return errs


def update_endpoints(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + create_endpoints(new)


# ---------------------------------------------------------------- events

_REPORTING_LIMIT = 128
_NOTE_LIMIT = 1024

#: events.k8s.io/v1 field → core/v1 field (upstream validates the internal, core shape)
_EVENTS_V1_FIELDS = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}


def _as_core_event(obj: JSON, events_group: bool) -> JSON:
    if not events_group:
        return obj
    return {_EVENTS_V1_FIELDS.get(k, k): v for k, v in obj.items()}


def _legacy_event(ev: JSON, events_group: bool) -> Errs:
    errs: Errs = []
    ns = s(_meta(ev).get("namespace"))
    inv_ns = s(d(ev.get("involvedObject")).get("namespace"))
    rc_field = "reportingController" if events_group else "reportingComponent"
    if not ev.get("eventTime"):
        if not inv_ns:
            if ns not in ("", "default"):
                errs.append(
                    errors.invalid(
                        "involvedObject.namespace", inv_ns, "does not match event.namespace"
                    )
                )
        elif ns != inv_ns:
            errs.append(
                errors.invalid("involvedObject.namespace", inv_ns, "does not match event.namespace")
            )
    else:
        if not inv_ns and ns not in ("default", "kube-system"):
            errs.append(
                errors.invalid("involvedObject.namespace", inv_ns, "does not match event.namespace")
            )
        rc = s(ev.get("reportingComponent"))
        if not rc:
            errs.append(errors.required(rc_field))
        errs += validate_qualified_name(rc, rc_field)
        for f, limit in (
            ("reportingInstance", _REPORTING_LIMIT),
            ("action", _REPORTING_LIMIT),
            ("reason", _REPORTING_LIMIT),
        ):
            v = s(ev.get(f))
            if not v:
                errs.append(errors.required(f))
            if len(v) > limit:
                errs.append(errors.invalid(f, "", f"can have at most {limit} characters"))
        if len(s(ev.get("message"))) > _NOTE_LIMIT:
            errs.append(errors.invalid("message", "", f"can have at most {_NOTE_LIMIT} characters"))
    errs += [errors.invalid("namespace", ns, m) for m in names.is_dns1123_subdomain(ns)]
    return errs


def _strict_event(ev: JSON) -> Errs:
    errs = validate_object_meta(_meta(ev), True, names.name_is_dns_subdomain)
    series = ev.get("series")
    if isinstance(series, dict):
        if i(series.get("count")) < 2:
            errs.append(errors.invalid("series.count", "", "should be at least 2"))
        if not series.get("lastObservedTime"):
            errs.append(errors.required("series.lastObservedTime"))
    if not ev.get("eventTime"):
        errs.append(errors.required("eventTime"))
    t = s(ev.get("type"))
    if t not in ("Normal", "Warning"):
        errs.append(errors.invalid("type", "", f"has invalid value: {t}"))
    for f in ("firstTimestamp", "lastTimestamp"):
        if ev.get(f):
            errs.append(errors.invalid(f, "", "needs to be unset"))
    if i(ev.get("count")) != 0:
        errs.append(errors.invalid("count", "", "needs to be unset"))
    src = d(ev.get("source"))
    if s(src.get("component")) or s(src.get("host")):
        errs.append(errors.invalid("source", "", "needs to be unset"))
    return errs


def create_event(obj: JSON, events_group: bool) -> Errs:
    ev = _as_core_event(obj, events_group)
    errs = _legacy_event(ev, events_group)
    if events_group:
        errs += _strict_event(ev)
    return errs


def update_event(new: JSON, old: JSON, events_group: bool) -> Errs:
    ev, oev = _as_core_event(new, events_group), _as_core_event(old, events_group)
    errs = _legacy_event(ev, events_group)
    if not events_group:
        return errs
    errs += validate_object_meta_update(_meta(ev), _meta(oev))
    for f in (
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "action",
        "type",
        "eventTime",
    ):
        errs += immutable(ev.get(f), oev.get(f), f)
    return errs


# ---------------------------------------------------------------- storage


_ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]


def _access_modes(modes: Any, path: str, required_detail: str) -> Errs:
    errs: Errs = []
    items = [s(m) for m in lst(modes)]
    if not items:
        errs.append(errors.required(path, required_detail))
    for m in items:
        if m not in _ACCESS_MODES:
            errs.append(errors.not_supported(path, m, _ACCESS_MODES))
    if "ReadWriteOncePod" in items and any(
        m in _ACCESS_MODES and m != "ReadWriteOncePod" for m in items
    ):
        errs.append(errors.forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def create_persistent_volume(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), False, names.name_is_dns_subdomain)
    spec = d(obj.get("spec"))
    errs += _access_modes(spec.get("accessModes"), "spec.accessModes", "")
    cap = d(spec.get("capacity"))
    if not cap:
        errs.append(errors.required("spec.capacity"))
    if "storage" not in cap or len(cap) > 1:
        errs.append(errors.not_supported("spec.capacity", cap, ["storage"]))
    for k, v in cap.items():
        errs += validate_quantity_value(k, v, key("spec.capacity", k))
    pol = spec.get("persistentVolumeReclaimPolicy")
    if isinstance(pol, str) and pol and pol not in ("Delete", "Recycle", "Retain"):
        errs.append(
            errors.not_supported(
                "spec.persistentVolumeReclaimPolicy", pol, ["Delete", "Recycle", "Retain"]
            )
        )
    vm = spec.get("volumeMode")
    if isinstance(vm, str) and vm not in ("Block", "Filesystem"):
        errs.append(errors.not_supported("spec.volumeMode", vm, ["Block", "Filesystem"]))
    return errs


def update_persistent_volume(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old)) + create_persistent_volume(new)
    ns, os_ = d(new.get("spec")), d(old.get("spec"))
    errs += immutable(ns.get("volumeMode"), os_.get("volumeMode"), "volumeMode")
    return errs


def _pvc_spec(spec: JSON, path: str) -> Errs:
    errs = _access_modes(
        spec.get("accessModes"), child(path, "accessModes"), "at least 1 access mode is required"
    )
    errs += validate_label_selector(spec.get("selector"), child(path, "selector"))
    req = d(d(spec.get("resources")).get("requests"))
    rp = key(child(path, "resources"), "storage")
    if "storage" not in req:
        errs.append(errors.required(rp))
    else:
        errs += _positive_quantity(req["storage"], rp)
    scn = spec.get("storageClassName")
    if isinstance(scn, str) and scn:
        errs += [
            errors.invalid(child(path, "storageClassName"), scn, m)
            for m in names.name_is_dns_subdomain(scn, False)
        ]
    vm = spec.get("volumeMode")
    if isinstance(vm, str) and vm not in ("Block", "Filesystem"):
        errs.append(errors.not_supported(child(path, "volumeMode"), vm, ["Block", "Filesystem"]))
    return errs


def _positive_quantity(v: Any, path: str) -> Errs:
    try:
        q = parse_quantity(v)
    except (QuantityError, TypeError):
        return []
    if q <= 0:
        return [errors.invalid(path, canonical(v), "must be greater than zero")]
    return []


def create_persistent_volume_claim(obj: JSON) -> Errs:
    errs = validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain)
    return errs + _pvc_spec(d(obj.get("spec")), "spec")


def update_persistent_volume_claim(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old)) + create_persistent_volume_claim(new)
    ns, os_ = copy.deepcopy(d(new.get("spec"))), copy.deepcopy(d(old.get("spec")))
    if not s(os_.get("volumeName")):
        os_["volumeName"] = ns.get("volumeName")
    if s(d(new.get("status")).get("phase")) == "Bound":
        nreq = d(d(ns.get("resources")).get("requests"))
        oreq = d(d(os_.get("resources")).get("requests"))
        if "storage" in nreq:
            nreq["storage"] = oreq.get("storage")
        errs += _claim_shrink(new, old)
    if os_.get("storageClassName") is None and ns.get("storageClassName") is not None:
        os_["storageClassName"] = ns.get("storageClassName")
    if not equal(ns, os_):
        errs.append(
            errors.forbidden(
                "spec",
                "spec is immutable after creation except "
                "resources.requests and volumeAttributesClassName "
                "for bound claims",
            )
        )
    return errs


def _claim_shrink(new: JSON, old: JSON) -> Errs:
    """A bound claim's storage request may grow, and shrink only down to above its
    status.capacity (upstream v1.32, RecoverVolumeExpansionFailure on by default)."""
    path = ("spec", "resources", "requests", "storage")
    nreq = d(d(d(new.get("spec")).get("resources")).get("requests")).get("storage")
    oreq = d(d(d(old.get("spec")).get("resources")).get("requests")).get("storage")
    cap = d(d(new.get("status")).get("capacity")).get("storage")
    if nreq is None or oreq is None or cap is None:
        return []
    try:
        smaller = parse_quantity(nreq) < parse_quantity(oreq)
        below = parse_quantity(nreq) < parse_quantity(cap)
    except (QuantityError, ValueError):
        return []
    if smaller and below:
        return [errors.forbidden(".".join(path), "field can not be less than status.capacity")]
    return []


def _limit_range(obj: JSON) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for n, lim in enumerate(lst(d(obj.get("spec")).get("limits"))):
        lim = d(lim)
        p = f"spec.limits[{n}]"
        t = s(lim.get("type"))
        tmsgs = names.is_qualified_name(t)
        errs += [errors.invalid(child(p, "type"), t, m) for m in tmsgs]
        if not tmsgs and "/" not in t and t not in ("Pod", "Container", "PersistentVolumeClaim"):
            errs.append(
                errors.invalid(
                    child(p, "type"), t, "must be a standard limit type or fully qualified"
                )
            )
        if t in seen:
            errs.append(errors.duplicate(child(p, "type"), t))
        seen.add(t)
        sections = (
            ["max", "min"]
            + (["default", "defaultRequest"] if t != "Pod" else [])
            + ["maxLimitRequestRatio"]
        )
        if t == "Pod":
            for f in ("default", "defaultRequest"):
                if d(lim.get(f)):
                    errs.append(
                        errors.forbidden(child(p, f), "may not be specified when `type` is 'Pod'")
                    )
        for section in sections:
            for k in d(lim.get(section)):
                kp = key(child(p, section), k)
                if t in ("Pod", "Container"):
                    errs += validate_container_resource_name(k, kp)
                else:
                    errs += validate_resource_name(k, kp)
    return errs


def create_limit_range(obj: JSON) -> Errs:
    return validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain) + _limit_range(obj)


def update_limit_range(new: JSON, old: JSON) -> Errs:
    return validate_object_meta_update(_meta(new), _meta(old)) + _limit_range(new)


def _quota_hard(obj: JSON) -> Errs:
    errs: Errs = []
    for k, v in d(d(obj.get("spec")).get("hard")).items():
        p = key("spec.hard", k)
        msgs = names.is_qualified_name(k)
        errs += [errors.invalid(p, k, m) for m in msgs]
        errs += validate_quantity_value(k, v, p)
    return errs


def create_resource_quota(obj: JSON) -> Errs:
    return validate_object_meta(_meta(obj), True, names.name_is_dns_subdomain) + _quota_hard(obj)


def update_resource_quota(new: JSON, old: JSON) -> Errs:
    errs = validate_object_meta_update(_meta(new), _meta(old)) + _quota_hard(new)
    nsc = sorted(s(x) for x in lst(d(new.get("spec")).get("scopes")))
    osc = sorted(s(x) for x in lst(d(old.get("spec")).get("scopes")))
    if nsc != osc:
        errs.append(errors.invalid("spec.scopes", lst(d(new.get("spec")).get("scopes")), IMMUTABLE))
    return errs
