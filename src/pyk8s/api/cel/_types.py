"""CEL types for the static checks, and the structural schema → type mapping upstream uses.

Upstream declares ``self`` with a type derived from the CRD's structural schema
(``SchemaDeclType`` in k8s.io/apiserver/pkg/cel/common): ``integer`` → ``int``, ``number`` →
``double``, ``boolean`` → ``bool``, ``string`` → ``string`` (``format: byte`` → ``bytes``,
``date``/``date-time`` → ``timestamp``, ``duration`` → ``duration``), ``array`` → ``list``,
``object`` with ``additionalProperties`` → ``map(string, V)``, ``object`` otherwise → an
object whose fields are the properties (names escaped as upstream escapes them),
``x-kubernetes-int-or-string`` → ``dyn``. A schema without a type (a bare
``x-kubernetes-preserve-unknown-fields``) is not exposed at all: its property is left out of
the object type, and a list or map of such values is left out too. The root of a resource
and of an ``x-kubernetes-embedded-resource`` always exposes ``apiVersion``, ``kind``,
``metadata.name`` and ``metadata.generateName``, and nothing else of ``metadata``.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = [
    "AUTHORIZER",
    "BOOL",
    "BYTES",
    "CIDR",
    "DECISION",
    "DOUBLE",
    "DURATION",
    "DYN",
    "FORMAT",
    "GROUP_CHECK",
    "INT",
    "IP",
    "NULL",
    "PATH_CHECK",
    "QUANTITY",
    "RESOURCE_CHECK",
    "STRING",
    "TIMESTAMP",
    "TYPE",
    "UINT",
    "URL",
    "Type",
    "escape",
    "list_of",
    "map_of",
    "object_of",
    "optional_of",
    "schema_type",
]


class Type:
    """A CEL type: a primitive ``kind``, or list/map/object/optional with parameters."""

    __slots__ = ("elem", "fields", "key", "kind")

    def __init__(
        self,
        kind: str,
        elem: Type | None = None,
        key: Type | None = None,
        fields: dict[str, Type] | None = None,
    ) -> None:
        self.kind = kind
        self.elem = elem
        self.key = key
        self.fields = fields

    def __repr__(self) -> str:
        return f"Type({self})"

    def __str__(self) -> str:
        """cel-go's ``FormatCELType`` spelling (``list(int)``, ``map(string, dyn)``)."""
        if self.kind == "list":
            return f"list({self.elem})"
        if self.kind == "map":
            return f"map({self.key}, {self.elem})"
        if self.kind == "optional":
            return f"optional_type({self.elem})"
        return self.kind

    @property
    def is_dyn(self) -> bool:
        return self.kind == "dyn"


DYN: Final = Type("dyn")
INT: Final = Type("int")
UINT: Final = Type("uint")
DOUBLE: Final = Type("double")
STRING: Final = Type("string")
BOOL: Final = Type("bool")
BYTES: Final = Type("bytes")
NULL: Final = Type("null")
TIMESTAMP: Final = Type("timestamp")
DURATION: Final = Type("duration")
TYPE: Final = Type("type")
QUANTITY: Final = Type("kubernetes.Quantity")
URL: Final = Type("kubernetes.URL")
IP: Final = Type("net.IP")
CIDR: Final = Type("net.CIDR")
FORMAT: Final = Type("kubernetes.NamedFormat")
#: the authz library's types (the ``authorizer`` variable of admission policies)
AUTHORIZER: Final = Type("kubernetes.authorization.Authorizer")
PATH_CHECK: Final = Type("kubernetes.authorization.PathCheck")
GROUP_CHECK: Final = Type("kubernetes.authorization.GroupCheck")
RESOURCE_CHECK: Final = Type("kubernetes.authorization.ResourceCheck")
DECISION: Final = Type("kubernetes.authorization.Decision")


def list_of(elem: Type) -> Type:
    return Type("list", elem)


def map_of(key: Type, value: Type) -> Type:
    return Type("map", value, key)


def optional_of(elem: Type) -> Type:
    return Type("optional", elem)


def object_of(fields: dict[str, Type]) -> Type:
    return Type("object", fields=fields)


_RESERVED: Final = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)
_PLAIN: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPAND: Final = re.compile(r"__|[-./]")
_EXPANSIONS: Final = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}
_ESCAPABLE: Final = re.compile(r"[A-Za-z0-9_./-]+")


def escape(name: str) -> str | None:
    """A property name as CEL field name (upstream's ``Escape``), or None if it has none.

    ``foo-bar`` → ``foo__dash__bar``, ``a.b`` → ``a__dot__b``, ``x/y`` → ``x__slash__y``,
    ``__`` → ``__underscores__``; reserved words are wrapped (``namespace`` →
    ``__namespace__``); names starting with a digit or using other characters are not
    accessible from CEL.
    """
    if not name or name[0].isdigit():
        return None
    if name in _RESERVED:
        return f"__{name}__"
    if _PLAIN.fullmatch(name) and "__" not in name:
        return name
    if not _ESCAPABLE.fullmatch(name):
        return None
    return _EXPAND.sub(lambda m: _EXPANSIONS[m.group()], name)


_STRING_TYPE: Final[dict[str, Any]] = {"type": "string"}
_META_TYPE: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {"name": _STRING_TYPE, "generateName": _STRING_TYPE},
}


def with_type_and_object_meta(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of a resource root as CEL sees it (upstream's ``WithTypeAndObjectMeta``)."""
    props = dict(schema.get("properties") or {})
    props["kind"] = _STRING_TYPE
    props["apiVersion"] = _STRING_TYPE
    props["metadata"] = _META_TYPE
    out = dict(schema)
    out["properties"] = props
    return out


def schema_type(schema: dict[str, Any] | None, resource_root: bool = False) -> Type | None:
    """The CEL type upstream declares for values of ``schema``; None when not exposed."""
    if not isinstance(schema, dict):
        return None
    if schema.get("x-kubernetes-int-or-string"):
        return DYN
    if resource_root:
        schema = with_type_and_object_meta(schema)
    t = schema.get("type")
    if t == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            return None
        elem = schema_type(items, bool(items.get("x-kubernetes-embedded-resource")))
        return list_of(elem) if elem is not None else None
    if t == "object":
        ap = schema.get("additionalProperties")
        if isinstance(ap, dict):
            val = schema_type(ap, bool(ap.get("x-kubernetes-embedded-resource")))
            return map_of(STRING, val) if val is not None else None
        fields: dict[str, Type] = {}
        for name, prop in (schema.get("properties") or {}).items():
            if not isinstance(prop, dict):
                continue
            ft = schema_type(prop, bool(prop.get("x-kubernetes-embedded-resource")))
            esc = escape(name)
            if ft is not None and esc is not None:
                fields[esc] = ft
        return object_of(fields)
    if t == "string":
        fmt = schema.get("format")
        if fmt == "byte":
            return BYTES
        if fmt == "duration":
            return DURATION
        if fmt in ("date", "date-time"):
            return TIMESTAMP
        return STRING
    if t == "boolean":
        return BOOL
    if t == "number":
        return DOUBLE
    if t == "integer":
        return INT
    return None
