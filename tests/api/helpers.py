"""Helpers the tests of :mod:`pyk8s.api` share."""

from __future__ import annotations

from typing import Any

from pyk8s.api.registry import REGISTRY, Resource


def res(api_version: str, kind: str) -> Resource:
    """The registered resource of ``kind`` in ``api_version`` (``apps/v1``, ``v1``)."""
    r = REGISTRY.for_api_version(api_version, kind)
    assert r is not None, (api_version, kind)
    return r


def msgs(errs: list[Any]) -> list[str]:
    """Field errors as upstream prints them."""
    return [str(e) for e in errs]
