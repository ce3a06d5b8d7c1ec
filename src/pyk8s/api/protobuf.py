"""Kubernetes protobuf bodies (``application/vnd.kubernetes.protobuf``) to and from JSON dicts.

Why: kubectl's typed-client commands (``kubectl create namespace|configmap|secret|
deployment|job|...``, ``kubectl run``, ``kubectl expose``, ``kubectl drain``'s evictions,
``kubectl create token``, ``kubectl auth can-i``) encode their request bodies as protobuf,
not JSON. The rest of pyk8s speaks JSON dicts, so this module turns such a body into
exactly the dict Go's ``json.Marshal`` of the typed struct would give (and back, for tests
and for answering protobuf later). No generated code: a small wire-format reader/writer
driven by a field table.

The envelope is ``b"k8s\\x00"`` + a ``runtime.Unknown`` message (1: typeMeta{1: apiVersion,
2: kind}, 2: raw = the object's own message, 3: contentEncoding, 4: contentType).

The table, ``protobuf_fields.json`` next to this module, was derived (by a throw-away
script, not shipped) from k8s.io/api and k8s.io/apimachinery v0.32: field numbers and
protobuf types from each group's ``generated.proto``, JSON names, ``omitempty``, pointers
and ``,inline`` embedding from the Go struct tags in ``types.go``. It covers every message
reachable from the kinds in :mod:`pyk8s.api.registry` (and their lists), the bodies
kubectl posts to subresources and reviews (Scale, Eviction, TokenRequest, TokenReview,
SelfSubjectReview, *SubjectAccessReview, SelfSubjectRulesReview) and meta/v1's option
kinds; policy/v1beta1's Eviction, which pods/eviction still accepts, has policy/v1's very
fields and numbers, so it maps to that message. Each field is
``[number, json name, type, card, flags]``: type is a scalar
(``string bool int32 int64 uint32 uint64 double float bytes``), a special
(``Time MicroTime Quantity IntOrString RawExtension FieldsV1``) or a message name such as
``core/v1.PodSpec``; card is ``opt``, ``rep`` or ``map`` (string keys; the type is the
value's); flags hold ``p`` (Go pointer), ``o`` (omitempty), ``i`` (JSON-inlined embed). A
message that is a Go named slice (``ExtraValue``) is ``{"wrap": element type}``.

JSON semantics follow Go's encoding/json on the typed struct: a non-pointer scalar, slice
or map with ``omitempty`` and a zero value is dropped; a pointer present on the wire is
kept even when zero (``replicas: 0``); fields without ``omitempty`` keep zero values (nil
slices and maps become ``null``); non-pointer structs are always emitted (``spec: {}``,
``creationTimestamp: null``, ``targetPort: 0``); map keys are sorted; bytes are base64.
The writer mirrors gogo-protobuf's output (non-pointer scalars and structs always written,
fields in number order, map keys sorted), so encoding a dict decoded from kubectl's bytes
gives kubectl's bytes back.

Errors: :func:`decode_object` raises ``StatusError`` 400 BadRequest for malformed bytes or
an unknown kind; :func:`encode_object` raises 406 NotAcceptable for a kind without a
protobuf message and 500 for a value that does not fit its field.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson

from pyk8s.api import errors

__all__ = [
    "MAGIC",
    "MEDIA_TYPE",
    "decode_object",
    "encode_object",
    "go_fields",
    "is_protobuf",
    "message_of",
    "omits_empty",
]

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

_SCALARS = frozenset(
    {"string", "bool", "int32", "int64", "uint32", "uint64", "double", "float", "bytes"}
)
_SPECIALS = frozenset({"Time", "MicroTime", "Quantity", "IntOrString", "RawExtension", "FieldsV1"})
_VARINTS = frozenset({"bool", "int32", "int64", "uint32", "uint64"})
_PACKABLE = _VARINTS | {"double", "float"}
_MAX_DEPTH = 64

# wire types
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def is_protobuf(content_type: str | None) -> bool:
    """Whether a Content-Type header names the Kubernetes protobuf encoding."""
    return (content_type or "").split(";", 1)[0].strip().lower() == MEDIA_TYPE


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class _Field:
    num: int
    json: str
    type: str
    card: str  # "opt" | "rep" | "map"
    pointer: bool
    omitempty: bool
    inline: bool


@dataclass(frozen=True, slots=True)
class _Message:
    name: str
    fields: tuple[_Field, ...]  # in Go declaration order (the JSON order)
    by_num: dict[int, _Field]
    wrap: str | None = None  # a Go named slice: {repeated <wrap> items = 1}


@dataclass(frozen=True, slots=True)
class _Schema:
    messages: dict[str, _Message]
    kinds: dict[str, dict[str, str]]  # apiVersion -> kind -> message
    meta_kinds: dict[str, str]  # kinds every group version serves (DeleteOptions, ...)

    def message_for(self, api_version: str, kind: str) -> _Message | None:
        name = self.kinds.get(api_version, {}).get(kind) or self.meta_kinds.get(kind)
        return self.messages[name] if name else None


@functools.cache
def _schema() -> _Schema:
    data = orjson.loads(resources.files("pyk8s.api").joinpath("protobuf_fields.json").read_bytes())
    messages: dict[str, _Message] = {}
    for name, spec in data["messages"].items():
        if isinstance(spec, dict):
            messages[name] = _Message(name, (), {}, wrap=spec["wrap"])
            continue
        fields = tuple(
            _Field(num, js, typ, card, "p" in flags, "o" in flags, "i" in flags)
            for num, js, typ, card, flags in spec
        )
        messages[name] = _Message(name, fields, {f.num: f for f in fields})
    return _Schema(messages, data["kinds"], data["meta_kinds"])


def message_of(api_version: str, kind: str) -> str | None:
    """The message (Go struct) name of a kind, e.g. ``core/v1.Pod``; None if unknown."""
    schema = _schema()
    return schema.kinds.get(api_version, {}).get(kind) or schema.meta_kinds.get(kind)


def go_fields(message: str) -> tuple[tuple[str, str, str, bool], ...]:
    """A message's fields as (JSON name, type, card, inlined) in Go declaration order,
    the order ``encoding/json`` writes them in; () for an unknown or slice message."""
    msg = _schema().messages.get(message)
    if msg is None:
        return ()
    return tuple((f.json, f.type, f.card, f.inline) for f in msg.fields)


def omits_empty(message: str, json_name: str) -> bool:
    """Whether Go leaves the field out of JSON when it is empty (``omitempty``); a field
    the table does not know counts as omitted."""
    msg = _schema().messages.get(message)
    if msg is None:
        return True
    return next((f.omitempty for f in msg.fields if f.json == json_name), True)


# --------------------------------------------------------------------------- errors


class _Bad(Exception):
    """A decode/encode failure; ``path`` collects the JSON field names on the way up."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def where(self) -> str:
        return ".".join(reversed(self.path))


# --------------------------------------------------------------------------- reading


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise _Bad("unexpected end of data in a varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise _Bad("varint overflows 64 bits")


def _iter_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value): an int for numeric wire types, bytes for LEN."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise _Bad("illegal field number 0")
        if wt == _VARINT:
            v, pos = _varint(buf, pos)
            out.append((num, wt, v))
        elif wt == _LEN:
            size, pos = _varint(buf, pos)
            end = pos + size
            if end > n:
                raise _Bad("unexpected end of data in a length-delimited field")
            out.append((num, wt, buf[pos:end]))
            pos = end
        elif wt == _I64:
            if pos + 8 > n:
                raise _Bad("unexpected end of data in a fixed64 field")
            out.append((num, wt, int.from_bytes(buf[pos : pos + 8], "little")))
            pos += 8
        elif wt == _I32:
            if pos + 4 > n:
                raise _Bad("unexpected end of data in a fixed32 field")
            out.append((num, wt, int.from_bytes(buf[pos : pos + 4], "little")))
            pos += 4
        else:
            raise _Bad(f"unsupported wire type {wt} for field {num}")
    return out


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _scalar(typ: str, wt: int, v: int | bytes) -> Any:
    """One scalar value from the wire, as JSON has it."""
    if typ in _VARINTS:
        if wt != _VARINT or not isinstance(v, int):
            raise _Bad(f"wrong wire type {wt} for a {typ}")
        if typ == "bool":
            return v != 0
        if typ == "int32":
            return _signed(v, 32)
        if typ == "int64":
            return _signed(v, 64)
        return v & 0xFFFFFFFF if typ == "uint32" else v
    if typ == "double":
        if wt != _I64 or not isinstance(v, int):
            raise _Bad(f"wrong wire type {wt} for a double")
        d: float = struct.unpack("<d", v.to_bytes(8, "little"))[0]
        return d
    if typ == "float":
        if wt != _I32 or not isinstance(v, int):
            raise _Bad(f"wrong wire type {wt} for a float")
        f: float = struct.unpack("<f", v.to_bytes(4, "little"))[0]
        return f
    if wt != _LEN or not isinstance(v, bytes):
        raise _Bad(f"wrong wire type {wt} for a {typ}")
    if typ == "string":
        # Go keeps invalid UTF-8 in strings; its JSON encoder writes U+FFFD for it
        return v.decode("utf-8", errors="replace")
    return base64.b64encode(v).decode("ascii")  # bytes


def _zero(typ: str) -> Any:
    if typ == "string" or typ == "bytes":
        return ""
    if typ == "bool":
        return False
    if typ in ("double", "float"):
        return 0.0
    return 0


def _rfc3339(seconds: int, micros: int | None) -> str:
    try:
        t = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise _Bad(f"time {seconds}s is out of range") from err
    base = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{base}Z" if micros is None else f"{base}.{micros:06d}Z"


def _scalars(data: bytes, types: dict[int, str]) -> dict[int, Any]:
    """The scalar fields of a small message, by number (``types``: number -> type).

    Every occurrence is decoded (and checked); the last one wins, as in proto3.
    """
    out: dict[int, Any] = {}
    for num, wt, v in _iter_fields(data):
        if num in types:
            out[num] = _scalar(types[num], wt, v)
    return out


def _decode_special(typ: str, data: bytes, depth: int) -> Any:
    if typ in ("Time", "MicroTime"):
        if not data:  # the zero time: Go writes an empty message and JSON says null
            return None
        time = _scalars(data, {1: "int64", 2: "int32"})
        seconds, nanos = time.get(1, 0), time.get(2, 0)
        # metav1.Time keeps whole seconds only; MicroTime keeps microseconds
        return _rfc3339(seconds, None if typ == "Time" else max(nanos, 0) // 1000 % 1_000_000)
    if typ == "Quantity":
        return _scalars(data, {1: "string"}).get(1) or "0"  # the zero Quantity prints as "0"
    if typ == "IntOrString":
        ios = _scalars(data, {1: "int64", 2: "int32", 3: "string"})
        return ios.get(3, "") if ios.get(1, 0) == 1 else ios.get(2, 0)
    # RawExtension / FieldsV1: raw bytes holding JSON (or, for RawExtension, a protobuf object)
    raw: bytes | None = None
    for num, wt, v in _iter_fields(data):
        if num == 1:
            if wt != _LEN or not isinstance(v, bytes):
                raise _Bad(f"wrong wire type {wt} for raw bytes")
            raw = v
    if raw is None:
        return None
    if raw.startswith(MAGIC):
        return _decode_envelope(raw, depth + 1)
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise _Bad(f"embedded {typ} is not JSON: {err}") from err


def _decode_value(typ: str, wt: int, v: int | bytes, depth: int) -> Any:
    """One (non-repeated) element of any type."""
    if typ in _SCALARS:
        return _scalar(typ, wt, v)
    if wt != _LEN or not isinstance(v, bytes):
        raise _Bad(f"wrong wire type {wt} for a message")
    if typ in _SPECIALS:
        return _decode_special(typ, v, depth)
    return _decode_message(_schema().messages[typ], v, depth + 1)


def _decode_message(msg: _Message, data: bytes, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise _Bad("message nesting is too deep")
    if msg.wrap is not None:  # a Go named slice ([]string): a JSON array, nil -> null
        items = [
            _decode_value(msg.wrap, wt, v, depth) for num, wt, v in _iter_fields(data) if num == 1
        ]
        return items or None
    seen: dict[int, list[tuple[int, int | bytes]]] = {}
    for num, wt, v in _iter_fields(data):
        if num in msg.by_num:
            seen.setdefault(num, []).append((wt, v))
    out: dict[str, Any] = {}
    for f in msg.fields:
        try:
            _decode_field(f, seen.get(f.num), out, depth)
        except _Bad as bad:
            bad.path.append(f.json or f.type.rpartition(".")[2])
            raise
    return out


def _decode_field(
    f: _Field, vals: list[tuple[int, int | bytes]] | None, out: dict[str, Any], depth: int
) -> None:
    typ = f.type
    if f.card == "rep":
        items: list[Any] = []
        for wt, v in vals or ():
            if wt == _LEN and typ in _PACKABLE and isinstance(v, bytes):
                items.extend(_unpack(typ, v))  # packed repeated numbers
            else:
                items.append(_decode_value(typ, wt, v, depth))
        if items:
            out[f.json] = items
        elif not f.omitempty:
            out[f.json] = None
        return
    if f.card == "map":
        entries: dict[str, Any] = {}
        for wt, v in vals or ():
            if wt != _LEN or not isinstance(v, bytes):
                raise _Bad(f"wrong wire type {wt} for a map entry")
            key, value = "", None
            for num, ewt, ev in _iter_fields(v):
                if num == 1:
                    key = _scalar("string", ewt, ev)
                elif num == 2:
                    value = _decode_value(typ, ewt, ev, depth)
            if value is None and typ != "bytes":  # a nil []byte value stays null
                value = _zero(typ) if typ in _SCALARS else _decode_value(typ, _LEN, b"", depth)
            entries[key] = value
        if entries:
            out[f.json] = dict(sorted(entries.items()))
        elif not f.omitempty:
            out[f.json] = None
        return
    if typ in _SCALARS:
        if vals:
            wt, v = vals[-1]
            value = _scalar(typ, wt, v)
            if f.pointer or not f.omitempty or value != _zero(typ):
                out[f.json] = value
        elif not f.omitempty:
            out[f.json] = None if f.pointer or typ == "bytes" else _zero(typ)
        return
    # a message (or special): repeated occurrences merge, which is concatenation
    if vals:
        for wt, _ in vals:
            if wt != _LEN:
                raise _Bad(f"wrong wire type {wt} for a message")
        data = b"".join(v for _, v in vals if isinstance(v, bytes))
    elif f.pointer:
        if not f.omitempty and not f.inline:
            out[f.json] = None
        return
    else:
        data = b""  # a Go struct value is always there (and always in its JSON)
    value = _decode_value(typ, _LEN, data, depth)
    if f.inline:
        if isinstance(value, dict):
            for k, v in value.items():
                out.setdefault(k, v)
    else:
        out[f.json] = value


def _unpack(typ: str, data: bytes) -> list[Any]:
    items: list[Any] = []
    pos = 0
    while pos < len(data):
        if typ == "double":
            items.append(_scalar(typ, _I64, int.from_bytes(data[pos : pos + 8], "little")))
            pos += 8
        elif typ == "float":
            items.append(_scalar(typ, _I32, int.from_bytes(data[pos : pos + 4], "little")))
            pos += 4
        else:
            v, pos = _varint(data, pos)
            items.append(_scalar(typ, _VARINT, v))
    if pos != len(data):
        raise _Bad("truncated packed field")
    return items


def _decode_envelope(body: bytes, depth: int) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise _Bad("the body does not start with the protobuf magic number k8s\\x00")
    api_version = kind = content_encoding = content_type = ""
    raw = b""
    for num, wt, v in _iter_fields(body[len(MAGIC) :]):
        if num == 1:
            if wt != _LEN or not isinstance(v, bytes):
                raise _Bad("wrong wire type for typeMeta")
            type_meta = _scalars(v, {1: "string", 2: "string"})
            api_version, kind = type_meta.get(1, api_version), type_meta.get(2, kind)
        elif num == 2:
            if wt != _LEN or not isinstance(v, bytes):
                raise _Bad("wrong wire type for raw")
            raw = v
        elif num == 3:
            content_encoding = _scalar("string", wt, v)
        elif num == 4:
            content_type = _scalar("string", wt, v)
    if content_encoding:
        raise _Bad(f"unsupported content encoding {content_encoding!r}")
    if content_type and content_type.split(";")[0].strip() == "application/json":
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise _Bad(f"embedded JSON object: {err}") from err
        if not isinstance(obj, dict):
            raise _Bad("embedded JSON is not an object")
        return obj
    if content_type and content_type.split(";")[0].strip() != MEDIA_TYPE:
        raise _Bad(f"unsupported content type {content_type!r} in the envelope")
    if not kind:
        raise _Bad("Object 'Kind' is missing in the protobuf envelope")
    msg = _schema().message_for(api_version, kind)
    if msg is None:
        raise _Bad(f'no kind "{kind}" is registered for version "{api_version}"')
    fields = _decode_message(msg, raw, depth)
    return {"kind": kind, "apiVersion": api_version, **fields}


def decode_object(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the JSON dict of the object (apiVersion and kind included).

    Raises ``StatusError`` 400 for malformed bytes or a kind pyk8s has no message for.
    """
    try:
        return _decode_envelope(bytes(body), 0)
    except _Bad as bad:
        where = bad.where()
        detail = f"{where}: {bad.message}" if where else bad.message
        raise errors.bad_request(f"error decoding protobuf body: {detail}") from None
    except RecursionError:
        raise errors.bad_request("error decoding protobuf body: nesting is too deep") from None


# --------------------------------------------------------------------------- writing


def _put_varint(out: bytearray, v: int) -> None:
    v &= 0xFFFFFFFFFFFFFFFF
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _put_len(out: bytearray, num: int, data: bytes) -> None:
    _put_varint(out, num << 3 | _LEN)
    _put_varint(out, len(data))
    out += data


def _want_int(v: Any, typ: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad(f"expected an integer for a {typ}, got {type(v).__name__}")
    if isinstance(v, float) and not v.is_integer():
        raise _Bad(f"expected an integer for a {typ}, got {v}")
    n = int(v)
    bits = 32 if typ in ("int32", "uint32") else 64
    if typ.startswith("u"):
        lo, hi = 0, (1 << bits) - 1
    else:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not lo <= n <= hi:
        raise _Bad(f"{n} overflows a {typ}")
    return n


def _put_scalar(out: bytearray, num: int, typ: str, v: Any) -> None:
    if typ == "bool":
        if not isinstance(v, bool):
            raise _Bad(f"expected a boolean, got {type(v).__name__}")
        _put_varint(out, num << 3 | _VARINT)
        _put_varint(out, int(v))
    elif typ in _VARINTS:
        _put_varint(out, num << 3 | _VARINT)
        _put_varint(out, _want_int(v, typ))
    elif typ in ("double", "float"):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise _Bad(f"expected a finite number, got {v!r}")
        if typ == "double":
            _put_varint(out, num << 3 | _I64)
            out += struct.pack("<d", float(v))
        else:
            _put_varint(out, num << 3 | _I32)
            out += struct.pack("<f", float(v))
    elif typ == "string":
        if not isinstance(v, str):
            raise _Bad(f"expected a string, got {type(v).__name__}")
        _put_len(out, num, v.encode("utf-8", errors="surrogatepass"))
    else:  # bytes, base64 in JSON
        if not isinstance(v, str):
            raise _Bad(f"expected a base64 string, got {type(v).__name__}")
        try:
            _put_len(out, num, base64.b64decode(v, validate=True))
        except binascii.Error as err:
            raise _Bad(f"illegal base64 data: {err}") from err


def _parse_time(v: Any, micro: bool) -> tuple[int, int]:
    if not isinstance(v, str):
        raise _Bad(f"expected an RFC 3339 time string, got {type(v).__name__}")
    try:
        t = datetime.fromisoformat(v.replace("z", "Z"))
    except ValueError as err:
        raise _Bad(f"invalid time {v!r}: {err}") from err
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    seconds = math.floor(t.timestamp())
    return seconds, (t.microsecond * 1000 if micro else 0)


def _encode_special(typ: str, v: Any) -> bytes:
    out = bytearray()
    if typ in ("Time", "MicroTime"):
        if v is None:
            return b""  # the zero time
        seconds, nanos = _parse_time(v, typ == "MicroTime")
        _put_scalar(out, 1, "int64", seconds)
        _put_scalar(out, 2, "int32", nanos)
    elif typ == "Quantity":
        if v is None:
            v = "0"  # the zero Quantity
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise _Bad(f"expected a quantity, got {type(v).__name__}")
        _put_scalar(out, 1, "string", v if isinstance(v, str) else format(v, "g"))
    elif typ == "IntOrString":
        if isinstance(v, str):
            _put_scalar(out, 1, "int64", 1)
            _put_scalar(out, 2, "int32", 0)
            _put_scalar(out, 3, "string", v)
        else:
            _put_scalar(out, 1, "int64", 0)
            _put_scalar(out, 2, "int32", 0 if v is None else v)
            _put_scalar(out, 3, "string", "")
    elif v is not None:  # RawExtension, FieldsV1: JSON bytes
        _put_len(out, 1, orjson.dumps(v))
    return bytes(out)


def _encode_value(typ: str, v: Any) -> bytes:
    """A message or special as bytes (without its tag)."""
    if typ in _SPECIALS:
        return _encode_special(typ, v)
    return _encode_message(_schema().messages[typ], v)


def _encode_message(msg: _Message, obj: Any) -> bytes:
    out = bytearray()
    if msg.wrap is not None:
        if obj is None:
            return b""
        if not isinstance(obj, list):
            raise _Bad(f"expected a list, got {type(obj).__name__}")
        for item in obj:
            _put_one(out, 1, msg.wrap, item)
        return bytes(out)
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise _Bad(f"expected an object, got {type(obj).__name__}")
    for f in sorted(msg.fields, key=lambda f: f.num):
        try:
            _encode_field(out, f, obj)
        except _Bad as bad:
            bad.path.append(f.json or f.type.rpartition(".")[2])
            raise
    return bytes(out)


def _put_one(out: bytearray, num: int, typ: str, v: Any) -> None:
    if typ in _SCALARS:
        _put_scalar(out, num, typ, v)
    else:
        _put_len(out, num, _encode_value(typ, v))


def _encode_field(out: bytearray, f: _Field, obj: dict[str, Any]) -> None:
    typ = f.type
    if f.inline:
        if f.pointer and not any(sf.json in obj for sf in _schema().messages[typ].fields):
            return
        _put_len(out, f.num, _encode_value(typ, obj))
        return
    v = obj.get(f.json)
    if f.card == "rep":
        if v is None:
            return
        if not isinstance(v, list):
            raise _Bad(f"expected a list, got {type(v).__name__}")
        for item in v:
            _put_one(out, f.num, typ, item)
        return
    if f.card == "map":
        if v is None:
            return
        if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            raise _Bad(f"expected an object with string keys, got {type(v).__name__}")
        for key in sorted(v):
            entry = bytearray()
            _put_scalar(entry, 1, "string", key)
            if v[key] is not None or typ not in ("bytes",):
                _put_one(
                    entry, 2, typ, _zero(typ) if v[key] is None and typ in _SCALARS else v[key]
                )
            _put_len(out, f.num, bytes(entry))
        return
    if v is None:
        if f.pointer or typ == "bytes":
            return  # nil pointers and nil byte slices are not written
        v = _zero(typ) if typ in _SCALARS else None
    if typ in _SCALARS:
        _put_scalar(out, f.num, typ, v)
    else:
        _put_len(out, f.num, _encode_value(typ, v))


def encode_object(obj: dict[str, Any]) -> bytes:
    """An object dict (with apiVersion and kind) as a Kubernetes protobuf body.

    Raises ``StatusError`` 406 when the kind has no protobuf message, 500 when a value does
    not fit its field.
    """
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not kind:
        raise errors.not_acceptable(
            "an object without apiVersion and kind cannot be encoded as protobuf"
        )
    msg = _schema().message_for(api_version, kind)
    if msg is None:
        raise errors.not_acceptable(
            f"object {api_version}/{kind} does not implement the protobuf marshalling "
            f"interface and cannot be encoded to a protobuf message"
        )
    try:
        raw = _encode_message(msg, obj)
    except _Bad as bad:
        where = bad.where()
        raise errors.internal(
            f"encoding {kind} as protobuf: {where + ': ' if where else ''}{bad.message}"
        ) from None
    type_meta = bytearray()
    _put_scalar(type_meta, 1, "string", api_version)
    _put_scalar(type_meta, 2, "string", kind)
    out = bytearray(MAGIC)
    _put_len(out, 1, bytes(type_meta))
    _put_len(out, 2, raw)
    _put_scalar(out, 3, "string", "")
    _put_scalar(out, 4, "string", "")
    return bytes(out)
