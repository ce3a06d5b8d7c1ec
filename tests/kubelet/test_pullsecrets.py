"""Which imagePullSecret credentials the kubelet offers the runtime for an image."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from pyk8s.kubelet.pullsecrets import PullSecretError, credentials_for, normalize_image


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def configjson(auths: dict[str, Any], name: str = "regcred") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": _b64(json.dumps({"auths": auths}))},
    }


def dockercfg(entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "old"},
        "type": "kubernetes.io/dockercfg",
        "data": {".dockercfg": _b64(json.dumps(entries))},
    }


def users(image: str, secrets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(a.username, a.password) for a in credentials_for(image, secrets)]


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("busybox", "docker.io/library/busybox"),
        ("busybox:1.35", "docker.io/library/busybox"),
        ("me/app:v1", "docker.io/me/app"),
        ("docker.io/me/app", "docker.io/me/app"),
        ("localhost/app:1", "localhost/app"),
        ("127.0.0.1:5000/team/app:2", "127.0.0.1:5000/team/app"),
        ("quay.io/x/y@sha256:abcd", "quay.io/x/y"),
    ],
)
def test_normalize_image(image: str, repo: str) -> None:
    assert normalize_image(image) == repo


def test_auth_field_is_base64_user_colon_password() -> None:
    secret = configjson({"registry.example.com": {"auth": _b64("alice:s3:cret")}})
    assert users("registry.example.com/app:1", [secret]) == [("alice", "s3:cret")]


def test_username_and_password_fields() -> None:
    secret = configjson({"registry.example.com": {"username": "bob", "password": "pw"}})
    assert users("registry.example.com/app", [secret]) == [("bob", "pw")]


def test_other_registries_get_nothing() -> None:
    secret = configjson({"registry.example.com": {"auth": _b64("a:b")}})
    assert users("other.example.com/app", [secret]) == []
    assert users("busybox", [secret]) == []


def test_port_must_match() -> None:
    secret = configjson({"127.0.0.1:5000": {"auth": _b64("a:b")}})
    assert users("127.0.0.1:5000/app:1", [secret]) == [("a", "b")]
    assert users("127.0.0.1:5001/app:1", [secret]) == []
    assert users("127.0.0.1/app:1", [secret]) == []


def test_scheme_and_v1_v2_suffixes_are_ignored() -> None:
    secret = configjson(
        {
            "https://a.example.com/v1/": {"auth": _b64("one:1")},
            "http://b.example.com/v2/": {"auth": _b64("two:2")},
        }
    )
    assert users("a.example.com/x", [secret]) == [("one", "1")]
    assert users("b.example.com/x", [secret]) == [("two", "2")]


def test_docker_hub_aliases_index_docker_io() -> None:
    secret = configjson({"https://index.docker.io/v1/": {"auth": _b64("hub:pw")}})
    for image in ("busybox", "library/busybox:1", "me/app", "docker.io/me/app:2"):
        assert users(image, [secret]) == [("hub", "pw")], image
    assert users("quay.io/me/app", [secret]) == []


def test_path_prefix_keys_come_before_host_keys() -> None:
    secret = configjson(
        {
            "registry.example.com": {"auth": _b64("host:h")},
            "registry.example.com/team": {"auth": _b64("team:t")},
        }
    )
    assert users("registry.example.com/team/app", [secret]) == [("team", "t"), ("host", "h")]
    assert users("registry.example.com/other/app", [secret]) == [("host", "h")]


def test_wildcard_matches_one_dns_label() -> None:
    secret = configjson({"*.example.com": {"auth": _b64("wild:w")}})
    assert users("eu.example.com/app", [secret]) == [("wild", "w")]
    assert users("a.eu.example.com/app", [secret]) == []
    assert users("example.com/app", [secret]) == []


def test_dockercfg_and_several_secrets() -> None:
    old = dockercfg({"registry.example.com": {"auth": _b64("old:o"), "email": "x@y"}})
    new = configjson({"registry.example.com": {"auth": _b64("new:n")}})
    assert users("registry.example.com/app", [new, old]) == [("new", "n"), ("old", "o")]


def test_secrets_of_other_types_are_ignored() -> None:
    opaque = {"type": "Opaque", "data": {".dockerconfigjson": _b64("not json")}}
    assert users("registry.example.com/app", [opaque]) == []


def test_malformed_secret_is_an_error() -> None:
    bad = {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": _b64("{")}}
    with pytest.raises(PullSecretError):
        credentials_for("busybox", [bad])
    no_colon = configjson({"r.example.com": {"auth": _b64("nocolon")}})
    with pytest.raises(PullSecretError):
        credentials_for("r.example.com/app", [no_colon])
