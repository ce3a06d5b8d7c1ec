"""``--admission-control-config-file``: upstream's ``AdmissionConfiguration``, read at startup.

A cluster admin configures admission plugins the upstream way, above all PodSecurity's
cluster-wide defaults and exemptions (the file a kubeadm or k3s user hardens a cluster
with)::

    apiVersion: apiserver.config.k8s.io/v1      # or apiserver.k8s.io/v1alpha1
    kind: AdmissionConfiguration
    plugins:
    - name: PodSecurity
      configuration:
        apiVersion: pod-security.admission.config.k8s.io/v1   # v1beta1, v1alpha1 too
        kind: PodSecurityConfiguration
        defaults: {enforce: baseline}
        exemptions: {namespaces: [kube-system]}
    - name: SomeOtherPlugin
      path: other.yaml                          # relative to this file's directory

:func:`load_admission_config` reads the file and returns what the enabled plugins get in
:attr:`Context.config <pyk8s.apiserver.admission.Context.config>`, by plugin name:
PodSecurity's configuration as a :class:`~pyk8s.api.podsecurity.PodSecurityConfig`, any
other plugin's as the raw bytes upstream would hand its factory (pyk8s's other plugins
take no configuration yet). As upstream, only the first entry naming an enabled plugin
counts; entries for disabled or unknown plugins are not read.

The file is decoded as apimachinery's universal decoder decodes it (JSON when it starts
with ``{``, YAML otherwise, only the first YAML document; ``apiVersion``/``kind`` checked
against the kinds upstream registers; PodSecurity's configuration strictly, so unknown
fields are refused), and every failure is :class:`AdmissionConfigError` carrying the text
kube-apiserver stops with, e.g.::

    failed to apply admission: failed to read plugin config: no kind "AdmissionConfiguration"
    is registered for version "apiserver.config.k8s.io/v2" in scheme "…"
    failed to apply admission: failed to initialize admission plugin "PodSecurity":
    PodSecurity configuration error: Enforce.Level: must be one of privileged, baseline, restricted

A file of the pre-versioned format (``imagePolicy:`` or ``podNodeSelectorPluginConfig:`` at
the top, which upstream still hands to ImagePolicyWebhook/PodNodeSelector) configures
nothing here: pyk8s has neither plugin.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import yaml

from pyk8s.api import podsecurity
from pyk8s.api.gofmt import go_json, go_quote, json_kind

__all__ = [
    "AdmissionConfigError",
    "PluginConfiguration",
    "decode_pod_security_configuration",
    "load_admission_config",
    "plugin_configuration",
    "read_admission_configuration",
]

#: upstream's ``runtime.NewScheme()`` call sites, which Go names the schemes after
ADMISSION_SCHEME: Final = "k8s.io/apiserver/pkg/server/options/admission.go:50"
POD_SECURITY_SCHEME: Final = "k8s.io/pod-security-admission/admission/api/scheme/scheme.go:31"

_ADMISSION_VERSIONS: Final = {
    ("apiserver.config.k8s.io", "v1"): "v1",
    ("apiserver.k8s.io", "v1alpha1"): "v1alpha1",
}
#: the other kinds upstream's admission config scheme holds: decoded, then refused
_OTHER_KINDS: Final = {
    ("apiserver.k8s.io", "v1alpha1", "EgressSelectorConfiguration"),
    ("apiserver.config.k8s.io", "v1alpha1", "AuthenticationConfiguration"),
    ("apiserver.config.k8s.io", "v1alpha1", "AuthorizationConfiguration"),
    ("apiserver.config.k8s.io", "v1alpha1", "TracingConfiguration"),
    ("apiserver.config.k8s.io", "v1", "EncryptionConfiguration"),
    ("apiserver.config.k8s.io", "v1", "TracingConfiguration"),
    ("", "v1", "EncryptionConfig"),
}
_POD_SECURITY_GROUP: Final = "pod-security.admission.config.k8s.io"
_POD_SECURITY_VERSIONS: Final = ("v1", "v1beta1", "v1alpha1")
_LEGACY_KEYS: Final = ("imagePolicy", "podNodeSelectorPluginConfig")

JSON = dict[str, Any]


class AdmissionConfigError(ValueError):
    """The admission configuration upstream refuses; ``str()`` is kube-apiserver's text."""


@dataclass(frozen=True, slots=True)
class PluginConfiguration:
    """One ``plugins[]`` entry (upstream's ``AdmissionPluginConfiguration``)."""

    name: str
    #: absolute (made so against the configuration file's directory), or ""
    path: str = ""
    #: the embedded ``configuration`` as the JSON bytes upstream keeps (None: absent)
    configuration: bytes | None = None


# --- the decoder -----------------------------------------------------------------------


class _DecodeError(Exception):
    """A decoding failure; ``kind`` says which (upstream tolerates a few for legacy files)."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class _Struct:
    """A Go struct's JSON fields, for ``encoding/json``'s type errors and strict mode."""

    pkg: str
    name: str
    fields: Mapping[str, _Type]


@dataclass(frozen=True, slots=True)
class _Slice:
    elem: _Type


_Type = str | _Struct | _Slice  # "string", "raw" (runtime.Unknown), a struct or a slice


def _type_name(t: _Type) -> str:
    if isinstance(t, _Struct):
        return f"{t.pkg}.{t.name}"
    if isinstance(t, _Slice):
        return "[]" + _type_name(t.elem)
    return t


_TYPE_META: Final[Mapping[str, _Type]] = {"apiVersion": "string", "kind": "string"}


def _admission_types(version: str) -> _Struct:
    plugin = _Struct(
        version,
        "AdmissionPluginConfiguration",
        {"name": "string", "path": "string", "configuration": "raw"},
    )
    return _Struct(version, "AdmissionConfiguration", {**_TYPE_META, "plugins": _Slice(plugin)})


def _pod_security_types(version: str) -> _Struct:
    level = "string"
    defaults = _Struct(
        version,
        "PodSecurityDefaults",
        {m: level for mode in ("enforce", "audit", "warn") for m in (mode, f"{mode}-version")},
    )
    names = _Slice("string")
    exemptions = _Struct(
        version,
        "PodSecurityExemptions",
        {"usernames": names, "namespaces": names, "runtimeClasses": names},
    )
    return _Struct(
        version,
        "PodSecurityConfiguration",
        {**_TYPE_META, "defaults": defaults, "exemptions": exemptions},
    )


def _unmarshal(
    value: Any,
    t: _Type,
    strict: list[str] | None,
    struct: str = "",
    fields: tuple[str, ...] = (),
    where: str = "",
) -> str | None:
    """``encoding/json`` decoding ``value`` into type ``t``: its first type error (None if
    none); unknown field paths are added to ``strict`` when decoding strictly."""
    if value is None or t == "raw":
        return None  # null leaves the zero value; runtime.Unknown keeps any JSON
    ok = (
        isinstance(value, str)
        if t == "string"
        else isinstance(value, list)
        if isinstance(t, _Slice)
        else isinstance(value, dict)
    )
    if not ok:
        into = f"Go struct field {struct}.{'.'.join(fields)}" if struct or fields else "Go value"
        return f"json: cannot unmarshal {json_kind(value)} into {into} of type {_type_name(t)}"
    first: str | None = None
    if isinstance(t, _Slice):
        for i, item in enumerate(value):
            err = _unmarshal(item, t.elem, strict, struct, fields, f"{where}[{i}]")
            first = first or err
    elif isinstance(t, _Struct):
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            ft = t.fields.get(key)
            if ft is None:
                if strict is not None:
                    strict.append(f"unknown field {json.dumps(path)}")
                continue
            err = _unmarshal(item, ft, strict, t.name, (*fields, key), path)
            first = first or err
    return first


class _Loader(yaml.CSafeLoader):
    """YAML as ``sigs.k8s.io/yaml`` reads it into JSON: timestamps stay strings."""


_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp",
    lambda loader, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


def _stringify_keys(value: Any) -> Any:
    """YAML maps as ``sigs.k8s.io/yaml`` turns them into JSON: string keys (``1: x`` is
    ``{"1": "x"}``), sorted (so decoding errors come in the order upstream meets them)."""
    if isinstance(value, dict):
        items = sorted(((_key(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        return {k: _stringify_keys(v) for k, v in items}
    if isinstance(value, list):
        return [_stringify_keys(v) for v in value]
    return value


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bool | int | float) or k is None:
        return go_json(k)
    return str(k)


def _yaml_error(e: yaml.YAMLError) -> str:
    """``sigs.k8s.io/yaml``'s text: libyaml's problem, on the line yaml.v2 reports."""
    problem = getattr(e, "problem", None) or "unknown problem parsing YAML content"
    mark, context = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
    line = 0
    if mark is not None and mark.line:
        # yaml.v2 counts a scanner error's line from 1 and a parser error's from 0
        line = mark.line + (1 if isinstance(e, yaml.scanner.ScannerError) else 0)
    elif context is not None:
        line = context.line
    where = f"line {line}: " if line else ""
    return f"error converting YAML to JSON: yaml: {where}{problem}"


def _go_char(c: str) -> str:
    """Go's ``quoteChar`` for ``invalid character …``."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return "'" + go_quote(c)[1:-1] + "'"


def _json_syntax(data: str, e: json.JSONDecodeError) -> str:
    """``encoding/json``'s syntax error for the first fault Python's parser found."""
    if e.pos >= len(data.rstrip()):
        return "unexpected end of JSON input"
    c = _go_char(data[e.pos])
    if e.msg.startswith("Expecting property name"):
        return f"invalid character {c} looking for beginning of object key string"
    if e.msg.startswith("Expecting ':'"):
        return f"invalid character {c} after object key"
    if e.msg.startswith("Expecting ','"):
        inner = max(data.rfind("{", 0, e.pos), data.rfind("[", 0, e.pos))
        if inner >= 0 and data[inner] == "{":
            return f"invalid character {c} after object key:value pair"
        return f"invalid character {c} after array element"
    if e.msg.startswith("Extra data"):
        return f"invalid character {c} after top-level value"
    return f"invalid character {c} looking for beginning of value"


_FIND_KIND: Final = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
    'Kind string "json:\\"kind,omitempty\\"" }'
)


def _parse(data: bytes) -> Any:
    """The document as JSON values: JSON if it starts with ``{`` (the recognizer's test),
    else the first YAML document."""
    text = data.decode("utf-8", "replace")
    if text.lstrip(" \t\r\n").startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise _DecodeError(
                f"couldn't get version/kind; json parse error: {_json_syntax(text, e)}"
            ) from None
    try:
        docs = yaml.load_all(text, Loader=_Loader)
        doc = next(iter(docs), None)
    except yaml.YAMLError as e:
        raise _DecodeError(_yaml_error(e)) from None
    return _stringify_keys(doc)


def _type_meta(doc: Any, original: bytes) -> tuple[str, str, str]:
    """(group, version, kind) as ``SimpleMetaFactory.Interpret`` finds them, with its
    errors: the missing kind and version name the document as given."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise _DecodeError(
            "couldn't get version/kind; json parse error: json: cannot unmarshal "
            f"{json_kind(doc)} into Go value of type {_FIND_KIND}"
        )
    for key in ("apiVersion", "kind"):
        value = doc.get(key)
        if value is not None and not isinstance(value, str):
            raise _DecodeError(
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{json_kind(value)} into Go struct field .{key} of type string"
            )
    api_version, kind = doc.get("apiVersion") or "", doc.get("kind") or ""
    if api_version.count("/") > 1:
        raise _DecodeError(f"unexpected GroupVersion string: {api_version}")
    group, _, version = api_version.rpartition("/")
    shown = original.decode("utf-8", "replace")
    if not kind:
        raise _DecodeError(f"Object 'Kind' is missing in '{shown}'", "missing")
    if not version:
        raise _DecodeError(f"Object 'apiVersion' is missing in '{shown}'", "missing")
    return group, version, kind


def _not_registered(group: str, version: str, kind: str, scheme: str) -> _DecodeError:
    gv = f"{group}/{version}" if group else version
    return _DecodeError(
        f"no kind {go_quote(kind)} is registered for version {go_quote(gv)} in scheme "
        f"{go_quote(scheme)}",
        "not-registered",
    )


# --- reading files ---------------------------------------------------------------------


class _PathError(Exception):
    """Go's ``*fs.PathError``."""

    def __init__(self, op: str, path: str, errno: int) -> None:
        reason = os.strerror(errno)
        super().__init__(f"{op} {path}: {reason[:1].lower()}{reason[1:]}")
        self.op, self.path, self.errno = op, path, errno

    def go_sharp_v(self) -> str:
        op, path = go_quote(self.op), go_quote(self.path)
        return f"&fs.PathError{{Op:{op}, Path:{path}, Err:{self.errno:#x}}}"


def _read(path: str) -> bytes:
    """``os.ReadFile``, failing as Go does (an open error, or a read error for a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise _PathError("open", path, e.errno or 0) from None
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    except OSError as e:
        raise _PathError("read", path, e.errno or 0) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _make_abs(path: str, base: str) -> str:
    """``makeAbs``: a relative path is taken against the configuration file's directory."""
    if os.path.isabs(path):
        return path
    if base in ("", "."):
        base = os.getcwd()
    return os.path.normpath(os.path.join(base, path))


# --- AdmissionConfiguration ------------------------------------------------------------


def read_admission_configuration(config_file: str | os.PathLike[str]) -> list[PluginConfiguration]:
    """The ``plugins`` of an AdmissionConfiguration file (upstream's
    ``ReadAdmissionConfiguration``), paths made absolute. Raises
    :class:`AdmissionConfigError` with ``failed to apply admission: failed to read plugin
    config: …``."""
    name = os.fspath(config_file)
    try:
        return _read_admission_configuration(name)
    except _DecodeError as e:
        message = f"failed to apply admission: failed to read plugin config: {e}"
        raise AdmissionConfigError(message) from None


def _read_admission_configuration(name: str) -> list[PluginConfiguration]:
    try:
        data = _read(name)
    except _PathError as e:
        raise _DecodeError(
            f"unable to read admission control configuration from {go_quote(name)} [{e}]"
        ) from None
    try:
        doc = _parse(data)
        group, version, kind = _type_meta(doc, data)
        go_version = _ADMISSION_VERSIONS.get((group, version))
        if (group, version, kind) in _OTHER_KINDS:
            raise _DecodeError(f"unexpected type: *apiserver.{kind}")
        if go_version is None or kind != "AdmissionConfiguration":
            raise _not_registered(group, version, kind, ADMISSION_SCHEME)
    except _DecodeError as e:
        if e.kind and _is_legacy(data):
            return []  # ImagePolicyWebhook's / PodNodeSelector's old file: not ours
        raise
    err = _unmarshal(doc, _admission_types(go_version), None)
    if err:
        raise _DecodeError(err)
    base = os.path.dirname(name)
    plugins = []
    for entry in doc.get("plugins") or []:
        entry = entry or {}
        path = entry.get("path") or ""
        raw = entry.get("configuration")
        plugins.append(
            PluginConfiguration(
                name=entry.get("name") or "",
                path=_make_abs(path, base) if path else "",
                configuration=None if raw is None else go_json(raw).encode(),
            )
        )
    return plugins


def _is_legacy(data: bytes) -> bool:
    try:
        doc = yaml.load(data, Loader=_Loader)
    except yaml.YAMLError:
        return False
    return isinstance(doc, dict) and any(k in doc for k in _LEGACY_KEYS)


def plugin_configuration(entry: PluginConfiguration) -> bytes | None:
    """What upstream hands the plugin's factory: the embedded configuration, else the
    file at ``path``, else None. A ``path`` that cannot be read is fatal (upstream's
    ``klog.Fatalf`` text)."""
    if entry.configuration is not None:
        return entry.configuration
    if entry.path:
        try:
            return _read(entry.path)
        except _PathError as e:
            raise AdmissionConfigError(
                f"Couldn't open admission plugin configuration {entry.path}: {e.go_sharp_v()}"
            ) from None
    return None


# --- PodSecurityConfiguration ----------------------------------------------------------


def decode_pod_security_configuration(data: bytes | None) -> podsecurity.PodSecurityConfig:
    """PodSecurity's configuration (``PodSecurityConfiguration``, pod-security.admission.
    config.k8s.io/v1, v1beta1 or v1alpha1) as the plugin reads it: none or empty means
    upstream's defaults (privileged/latest, no exemptions). Raises
    :class:`AdmissionConfigError` with the text the plugin stops kube-apiserver with."""
    try:
        cfg = _decode_pod_security(data)
    except _DecodeError as e:
        raise AdmissionConfigError(
            f'failed to apply admission: couldn\'t init admission plugin "PodSecurity": {e}'
        ) from None
    prefix = 'failed to apply admission: failed to initialize admission plugin "PodSecurity": '
    problems = _to_policy_errors(cfg.get("defaults") or {})
    if problems:
        raise AdmissionConfigError(f"{prefix}PodSecurity configuration error: {problems}")
    try:
        return podsecurity.PodSecurityConfig.from_configuration(cfg)
    except podsecurity.PolicyError as e:
        raise AdmissionConfigError(f"{prefix}PodSecurity invalid: {e}") from None


def _decode_pod_security(data: bytes | None) -> JSON:
    if not data:
        return {}
    doc = _parse(data)
    group, version, kind = _type_meta(doc, data)
    if (
        group != _POD_SECURITY_GROUP
        or version not in _POD_SECURITY_VERSIONS
        or kind != "PodSecurityConfiguration"
    ):
        raise _not_registered(group, version, kind, POD_SECURITY_SCHEME)
    unknown: list[str] = []
    err = _unmarshal(doc, _pod_security_types(version), unknown)
    if err:
        raise _DecodeError(err)
    if unknown:
        raise _DecodeError("strict decoding error: " + ", ".join(unknown))
    return dict(doc)


def _to_policy_errors(defaults: Mapping[str, Any]) -> str:
    """``ToPolicy`` over the defaulted levels and versions (the check upstream's plugin
    makes before the field validation): its aggregate message, or ""."""
    errs: list[str] = []
    for mode in ("enforce", "audit", "warn"):
        title = mode.capitalize()
        for field, value, parse in (
            ("Level", defaults.get(mode) or "privileged", podsecurity.parse_level),
            ("Version", defaults.get(f"{mode}-version") or "latest", podsecurity.parse_version),
        ):
            try:
                parse(value)
            except podsecurity.PolicyError as e:
                errs.append(f"{title}.{field}: {e}")
    if len(errs) > 1:
        return "[" + ", ".join(errs) + "]"
    return errs[0] if errs else ""


# --- the whole file ---------------------------------------------------------------------

#: plugins whose configuration pyk8s understands, and how to decode it
DECODERS: Final[Mapping[str, Callable[[bytes | None], Any]]] = {
    "PodSecurity": decode_pod_security_configuration,
}


def load_admission_config(
    config_file: str | os.PathLike[str] | None, enabled: Iterable[str]
) -> dict[str, Any]:
    """What each enabled plugin gets as its configuration, by name, for
    :attr:`Context.config <pyk8s.apiserver.admission.Context.config>`; ``{}`` without a
    file. Plugins are read in ``enabled`` order, as upstream builds its chain, so the first
    failure is the one kube-apiserver would stop at."""
    if config_file is None or not os.fspath(config_file):
        return {}
    entries = read_admission_configuration(config_file)
    out: dict[str, Any] = {}
    for name in enabled:
        entry = next((e for e in entries if e.name == name), None)
        if entry is None:
            continue
        data = plugin_configuration(entry)
        decoder = DECODERS.get(name)
        if decoder is not None:
            out[name] = decoder(data)
        elif data is not None:
            out[name] = data
    return out
