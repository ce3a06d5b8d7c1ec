"""Field paths rendered as upstream's ``field.Path`` renders them ("" is the nil path)."""

from __future__ import annotations


def child(path: str, name: str) -> str:
    """``path.Child(name)``: ``spec.replicas``."""
    return f"{path}.{name}" if path else name


def key(path: str, k: str) -> str:
    """``path.Key(k)``: ``properties[spec]``."""
    return f"{path}[{k}]"


def index(path: str, i: int) -> str:
    """``path.Index(i)``: ``items[0]``."""
    return f"{path}[{i}]"
