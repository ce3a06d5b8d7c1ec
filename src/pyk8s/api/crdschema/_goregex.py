"""Go (RE2) regular expressions, parsed Go's way and run by Python's ``re``.

A CRD ``pattern`` is a Go regular expression: upstream rejects what Go's
``regexp.Compile`` rejects (back references, look-arounds) with Go's error text
(``error parsing regexp: missing closing ): `(a` ``), and matches the way Go does
(``$`` only at the very end, ``\\d`` and ``\\w`` ASCII-only, flags scoped to their
group). Python's dialect differs on all of those, so :func:`compile_go` parses the Go
syntax itself and emits an equivalent Python expression, raising :class:`GoRegexError`
with upstream's message where Go would refuse the pattern.

``\\p{...}`` Unicode classes need the third-party ``regex`` module; without it they
fall back to close approximations (letters, digits).
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass, field
from typing import Any

MAX_RUNE = 0x10FFFF
_MAX_REPEAT = 1000


class GoRegexError(Exception):
    """``regexp/syntax.Error``: ``error parsing regexp: <code>: `<expr>```."""

    def __init__(self, code: str, expr: str) -> None:
        super().__init__(f"error parsing regexp: {code}: `{expr}`")
        self.code = code
        self.expr = expr


MISSING_PAREN = "missing closing )"
UNEXPECTED_PAREN = "unexpected )"
MISSING_BRACKET = "missing closing ]"
MISSING_REPEAT_ARG = "missing argument to repetition operator"
INVALID_REPEAT_OP = "invalid nested repetition operator"
INVALID_REPEAT_SIZE = "invalid repeat count"
INVALID_ESCAPE = "invalid escape sequence"
INVALID_CHAR_RANGE = "invalid character class range"
INVALID_PERL_OP = "invalid or unsupported Perl syntax"
INVALID_NAMED_CAPTURE = "invalid named capture"
DUPLICATE_NAME = "duplicate capture group name"
TRAILING_BACKSLASH = "trailing backslash at end of expression"

Ranges = list[tuple[int, int]]

_PERL: dict[str, Ranges] = {
    "d": [(0x30, 0x39)],
    "s": [(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)],
    "w": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
}

_POSIX: dict[str, Ranges] = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}

# Approximations used when the ``regex`` module is missing.
_UNICODE_FALLBACK = {"L": "[^\\W\\d_]", "N": "\\d", "Nd": "\\d"}


def _negate(r: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in sorted(r):
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = max(nxt, hi + 1)
    if nxt <= MAX_RUNE:
        out.append((nxt, MAX_RUNE))
    return out


def _esc(c: int) -> str:
    if c < 0x80 and (chr(c).isalnum()):
        return chr(c)
    return f"\\U{c:08x}" if c > 0xFFFF else f"\\u{c:04x}"


@dataclass
class _Flags:
    i: bool = False
    m: bool = False
    s: bool = False
    u: bool = False  # Go's U: ungreedy


@dataclass
class _Frame:
    flags: _Flags
    start: int  # output length when the group opened
    has_operand: bool = False
    names: set[str] = field(default_factory=set)


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.out: list[str] = []
        self.uses_unicode_classes = False
        self.names: set[str] = set()

    # --------------------------------------------------------------- helpers

    def _err(self, code: str, expr: str) -> GoRegexError:
        return GoRegexError(code, expr)

    def _scoped(self, atom: str, flags: _Flags) -> str:
        return f"(?i:{atom})" if flags.i else atom

    # --------------------------------------------------------------- escapes

    def _escape_char(self, cls_start: int | None) -> int:
        """Parse one escape (at ``\\``) that denotes a single rune; return it."""
        src = self.src
        start = self.pos
        self.pos += 1
        if self.pos >= len(src):
            raise self._err(TRAILING_BACKSLASH, "")
        c = src[self.pos]
        self.pos += 1
        if c in "1234567" and (self.pos >= len(src) or src[self.pos] not in "01234567"):
            raise self._err(INVALID_ESCAPE, src[start : self.pos])
        if c in "01234567":
            digits = c
            while len(digits) < 3 and self.pos < len(src) and src[self.pos] in "01234567":
                digits += src[self.pos]
                self.pos += 1
            return int(digits, 8)
        if c == "x":
            if self.pos >= len(src):
                raise self._err(INVALID_ESCAPE, src[start : self.pos])
            if src[self.pos] == "{":
                end = src.find("}", self.pos)
                hexd = src[self.pos + 1 : end] if end >= 0 else ""
                if end < 0 or not hexd or not re.fullmatch("[0-9A-Fa-f]+", hexd):
                    self.pos = end + 1 if end >= 0 else len(src)
                    raise self._err(INVALID_ESCAPE, src[start : self.pos])
                self.pos = end + 1
                v = int(hexd, 16)
                if v > MAX_RUNE:
                    raise self._err(INVALID_ESCAPE, src[start : self.pos])
                return v
            hexd = src[self.pos : self.pos + 2]
            if len(hexd) < 2 or not re.fullmatch("[0-9A-Fa-f]{2}", hexd):
                self.pos = min(len(src), self.pos + 2)
                raise self._err(INVALID_ESCAPE, src[start : self.pos])
            self.pos += 2
            return int(hexd, 16)
        simple = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
        if c in simple:
            return simple[c]
        if ord(c) < 0x80 and not c.isalnum():
            return ord(c)
        raise self._err(INVALID_ESCAPE, src[start : self.pos])

    def _unicode_class(self) -> str | None:
        """``\\pX`` / ``\\p{Name}`` / ``\\P...`` at pos (on the backslash): Python text."""
        src = self.src
        start = self.pos
        neg = src[self.pos + 1] == "P"
        self.pos += 2
        if self.pos >= len(src):
            raise self._err(INVALID_ESCAPE, src[start:])
        if src[self.pos] == "{":
            end = src.find("}", self.pos)
            if end < 0:
                raise self._err(INVALID_ESCAPE, src[start:])
            name = src[self.pos + 1 : end]
            self.pos = end + 1
        else:
            name = src[self.pos]
            self.pos += 1
        if name.startswith("^"):
            neg, name = not neg, name[1:]
        if not re.fullmatch(r"[A-Za-z_]+", name):
            raise self._err(INVALID_CHAR_RANGE, src[start : self.pos])
        self.uses_unicode_classes = True
        if _regex_module() is not None:
            return f"\\{'P' if neg else 'p'}{{{name}}}"
        approx = _UNICODE_FALLBACK.get(name, "[^\\W\\d_]")
        if neg:
            return "[\\W\\d_]" if approx.startswith("[^") else "\\D"
        return approx

    # --------------------------------------------------------------- classes

    def _class(self, flags: _Flags) -> str:
        src = self.src
        start = self.pos
        whole = src[start:]
        self.pos += 1
        negate = False
        if self.pos < len(src) and src[self.pos] == "^":
            negate = True
            self.pos += 1
        ranges: Ranges = []
        raw: list[str] = []
        first = True
        while True:
            if self.pos >= len(src):
                raise self._err(MISSING_BRACKET, whole)
            c = src[self.pos]
            if c == "]" and not first:
                self.pos += 1
                break
            first = False
            if src.startswith("[:", self.pos):
                end = src.find(":]", self.pos + 2)
                if end >= 0:
                    name = src[self.pos + 2 : end]
                    neg = name.startswith("^")
                    key = name[1:] if neg else name
                    if key not in _POSIX:
                        raise self._err(INVALID_CHAR_RANGE, src[self.pos : end + 2])
                    ranges += _negate(_POSIX[key]) if neg else _POSIX[key]
                    self.pos = end + 2
                    continue
            if c == "\\" and self.pos + 1 < len(src):
                n = src[self.pos + 1]
                if n in "pP":
                    u = self._unicode_class()
                    if u is not None:
                        raw.append(u[1:-1] if u.startswith("[") and not u.startswith("[^") else u)
                    continue
                if n.lower() in _PERL:
                    r = _PERL[n.lower()]
                    ranges += _negate(r) if n.isupper() else r
                    self.pos += 2
                    continue
            rng_start = self.pos
            lo = self._class_char(whole)
            hi = lo
            if self.pos + 1 < len(src) and src[self.pos] == "-" and src[self.pos + 1] != "]":
                self.pos += 1
                hi = self._class_char(whole)
                if hi < lo:
                    raise self._err(INVALID_CHAR_RANGE, src[rng_start : self.pos])
            ranges.append((lo, hi))
        body = "".join(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}" for lo, hi in ranges)
        body += "".join(raw)
        text = f"[{'^' if negate else ''}{body}]"
        return self._scoped(text, flags)

    def _class_char(self, whole: str) -> int:
        src = self.src
        if self.pos >= len(src):
            raise self._err(MISSING_BRACKET, whole)
        if src[self.pos] == "\\":
            return self._escape_char(None)
        c = src[self.pos]
        self.pos += 1
        return ord(c)

    # --------------------------------------------------------------- repetition

    def _repeat_op(self) -> tuple[str, int, int] | None:
        """Parse a repetition operator at pos; (text, min, max) or None if not one."""
        src = self.src
        c = src[self.pos]
        if c in "*+?":
            self.pos += 1
            return c, {"*": 0, "+": 1, "?": 0}[c], {"*": -1, "+": -1, "?": 1}[c]
        if c == "{":
            m = re.compile(r"\{(\d+)(,(\d*))?\}").match(src, self.pos)
            if not m:
                return None
            lo = int(m.group(1))
            hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else -1)
            self.pos = m.end()
            if lo > _MAX_REPEAT or hi > _MAX_REPEAT or (hi >= 0 and hi < lo):
                raise self._err(INVALID_REPEAT_SIZE, m.group(0))
            return m.group(0), lo, hi
        return None

    # --------------------------------------------------------------- main loop

    def parse(self) -> str:
        src = self.src
        stack: list[_Frame] = [_Frame(_Flags(), 0)]
        out = self.out
        last_atom_start: int | None = None  # output index of the last repeatable atom
        last_repeat_start: int | None = None  # where the previous token, a repeat, began
        while self.pos < len(src):
            frame = stack[-1]
            flags = frame.flags
            c = src[self.pos]
            if c in "*+?{":
                op_start = self.pos
                op = self._repeat_op()
                if op is None:  # a literal '{'
                    self.pos += 1
                    last_atom_start = len(out)
                    out.append(self._scoped(re.escape("{"), flags))
                    last_repeat_start = None
                    continue
                text, lo, hi = op
                greedy = True
                if self.pos < len(src) and src[self.pos] == "?":
                    greedy = False
                    self.pos += 1
                text = src[op_start : self.pos]
                if last_repeat_start is not None:
                    raise self._err(INVALID_REPEAT_OP, src[last_repeat_start : self.pos])
                if last_atom_start is None:
                    raise self._err(MISSING_REPEAT_ARG, text)
                if flags.u:
                    greedy = not greedy
                atom = "".join(out[last_atom_start:])
                del out[last_atom_start:]
                if hi == -1:
                    q = {0: "*", 1: "+"}.get(lo, f"{{{lo},}}")
                elif lo == 0 and hi == 1:
                    q = "?"
                elif lo == hi:
                    q = f"{{{lo}}}"
                else:
                    q = f"{{{lo},{hi}}}"
                out.append(f"(?:{atom}){q}{'' if greedy else '?'}")
                last_repeat_start = op_start
                continue
            last_repeat_start = None
            if c == "(":
                atom_start = len(out)
                self._group_open(stack, atom_start)
                last_atom_start = None
                continue
            if c == ")":
                if len(stack) == 1:
                    raise self._err(UNEXPECTED_PAREN, src)
                done = stack.pop()
                self.pos += 1
                out.append(")")
                last_atom_start = done.start
                continue
            if c == "|":
                self.pos += 1
                out.append("|")
                last_atom_start = None
                continue
            last_atom_start = len(out)
            if c == "[":
                out.append(self._class(flags))
            elif c == ".":
                self.pos += 1
                out.append("(?s:.)" if flags.s else "[^\\n]")
            elif c == "^":
                self.pos += 1
                out.append("(?:(?m:^))" if flags.m else "(?:\\A)")
            elif c == "$":
                self.pos += 1
                out.append("(?:(?m:$))" if flags.m else "(?:\\Z)")
            elif c == "\\":
                out.append(self._escape_atom(flags))
            else:
                self.pos += 1
                out.append(self._scoped(re.escape(c), flags))
        if len(stack) > 1:
            raise self._err(MISSING_PAREN, src)
        return "".join(out)

    def _escape_atom(self, flags: _Flags) -> str:
        src = self.src
        if self.pos + 1 >= len(src):
            raise self._err(TRAILING_BACKSLASH, "")
        n = src[self.pos + 1]
        if n == "A":
            self.pos += 2
            return "(?:\\A)"
        if n == "z":
            self.pos += 2
            return "(?:\\Z)"
        if n == "b":
            self.pos += 2
            return "(?:(?a:\\b))"
        if n == "B":
            self.pos += 2
            return "(?:(?a:\\B))"
        if n == "Q":
            end = src.find("\\E", self.pos + 2)
            lit = src[self.pos + 2 :] if end < 0 else src[self.pos + 2 : end]
            self.pos = len(src) if end < 0 else end + 2
            return "".join(self._scoped(re.escape(ch), flags) for ch in lit) or "(?:)"
        if n in "pP":
            u = self._unicode_class()
            return self._scoped(u or "(?!)", flags)
        if n.lower() in _PERL:
            self.pos += 2
            r = _PERL[n.lower()]
            rr = _negate(r) if n.isupper() else r
            return (
                "["
                + "".join(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}" for lo, hi in rr)
                + "]"
            )
        v = self._escape_char(None)
        return self._scoped(re.escape(chr(v)), flags)

    def _group_open(self, stack: list[_Frame], atom_start: int) -> None:
        src = self.src
        start = self.pos
        flags = stack[-1].flags
        if not src.startswith("(?", start):
            self.pos += 1
            stack.append(_Frame(_Flags(**vars(flags)), atom_start))
            self.out.append("(")
            return
        # named captures: (?P<name>re) and (?<name>re)
        if src.startswith("(?P<", start) or (
            src.startswith("(?<", start) and not src.startswith(("(?<=", "(?<!"), start)
        ):
            name_start = start + (4 if src[start + 2] == "P" else 3)
            end = src.find(">", name_start)
            if end < 0:
                raise self._err(INVALID_NAMED_CAPTURE, src[start:])
            name = src[name_start:end]
            if not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
                raise self._err(INVALID_NAMED_CAPTURE, src[start : end + 1])
            if name in self.names:
                raise self._err(DUPLICATE_NAME, name)
            self.names.add(name)
            self.pos = end + 1
            stack.append(_Frame(_Flags(**vars(flags)), atom_start))
            self.out.append("(")
            return
        # flags: (?flags) or (?flags:re)
        i = start + 2
        new = _Flags(**vars(flags))
        sign = True
        saw_flag = False
        saw_minus = False
        while i < len(src):
            c = src[i]
            i += 1
            if c in "imsU":
                setattr(new, "u" if c == "U" else c, sign)
                saw_flag = True
                continue
            if c == "-" and not saw_minus:
                sign = False
                saw_minus = True
                saw_flag = False
                continue
            if c in ":)":
                if c == ")" and saw_minus and not saw_flag:
                    raise self._err(INVALID_PERL_OP, src[start:i])
                if c == ":" and saw_minus and not saw_flag:
                    raise self._err(INVALID_PERL_OP, src[start:i])
                if c == ")" and not saw_flag and not saw_minus:
                    raise self._err(INVALID_PERL_OP, src[start:i])
                self.pos = i
                if c == ":":
                    stack.append(_Frame(new, atom_start))
                    self.out.append("(?:")
                else:
                    stack[-1].flags = new
                return
            raise self._err(INVALID_PERL_OP, src[start:i])
        raise self._err(MISSING_PAREN, src)


@functools.cache
def _regex_module() -> Any:
    try:
        return importlib.import_module("regex")
    except ImportError:  # pragma: no cover - depends on the environment
        return None


class GoPattern:
    """A compiled Go pattern; :meth:`search` is Go's ``MatchString`` (unanchored)."""

    __slots__ = ("_re", "source")

    def __init__(self, source: str, compiled: Any) -> None:
        self.source = source
        self._re = compiled

    def search(self, s: str) -> bool:
        return self._re.search(s) is not None


@functools.lru_cache(maxsize=1024)
def compile_go(pattern: str) -> GoPattern:
    """Compile a Go regular expression; raise :class:`GoRegexError` as Go would."""
    p = _Parser(pattern)
    py = p.parse()
    mod: Any = re
    if p.uses_unicode_classes and _regex_module() is not None:
        mod = _regex_module()
    try:
        compiled = mod.compile(py)
    except Exception as e:  # a translation Python refuses: report it Go-style
        raise GoRegexError("invalid regexp", f"{pattern}: {e}") from None
    return GoPattern(pattern, compiled)
