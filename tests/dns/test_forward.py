"""Upstream resolver configuration: resolv.conf and ``--upstream`` values."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.dns.forward import Upstream, nameservers, parse_upstream


def test_parse_upstream() -> None:
    assert parse_upstream("1.1.1.1") == Upstream("1.1.1.1", 53)
    assert parse_upstream("1.1.1.1:5353") == Upstream("1.1.1.1", 5353)
    assert parse_upstream("fd00::1") == Upstream("fd00::1", 53)
    assert parse_upstream("[fd00::1]:5353") == Upstream("fd00::1", 5353)
    assert str(Upstream("fd00::1", 53)) == "[fd00::1]:53"
    for bad in ["dns.google", "1.1.1.1:0", "1.1.1.1:x"]:
        with pytest.raises(ValueError):
            parse_upstream(bad)


def test_nameservers_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nsearch example.com\nnameserver 10.0.0.2\noptions ndots:5\n"
        "nameserver fd00::53\nnameserver not-an-address\n"
    )
    assert nameservers(conf) == [Upstream("10.0.0.2"), Upstream("fd00::53")]
    assert nameservers(tmp_path / "missing") == []
