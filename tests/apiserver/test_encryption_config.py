"""EncryptionConfiguration: what each configured resource maps to in storage, and
upstream's validation texts for the files kube-apiserver refuses to start with."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from pyk8s.apiserver.encryptionconfig import (
    EncryptionConfigError,
    load_encryption_config,
    storage_prefix,
)

KEY32 = base64.b64encode(b"k" * 32).decode()


def _write(tmp_path: Path, resources: list[dict[str, Any]]) -> Path:
    path = tmp_path / "enc.json"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "apiserver.config.k8s.io/v1",
                "kind": "EncryptionConfiguration",
                "resources": resources,
            }
        )
    )
    return path


def test_resources_map_to_their_storage_prefixes() -> None:
    assert storage_prefix("secrets") == "/registry/core/secrets/"
    assert storage_prefix("deployments.apps") == "/registry/apps/deployments/"
    assert storage_prefix("*.apps") == "/registry/apps/"
    assert storage_prefix("*.") == "/registry/core/"
    assert storage_prefix("*.*") == "/registry/"
    assert storage_prefix("widgets.example.com") == "/registry/example.com/widgets/"


def test_rules_keep_the_provider_order(tmp_path: Path) -> None:
    rules = load_encryption_config(
        _write(
            tmp_path,
            [
                {
                    "resources": ["secrets", "configmaps"],
                    "providers": [
                        {"secretbox": {"keys": [{"name": "sb", "secret": KEY32}]}},
                        {"aesgcm": {"keys": [{"name": "g1", "secret": KEY32}]}},
                        {"identity": {}},
                    ],
                }
            ],
        )
    )
    assert [r.key_prefix for r in rules] == [
        "/registry/core/secrets/",
        "/registry/core/configmaps/",
    ]
    assert [t.prefix for t in rules[0].transformers] == [
        b"k8s:enc:secretbox:v1:sb:",
        b"k8s:enc:aesgcm:v1:g1:",
        b"",
    ]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            [{"resources": ["secrets"], "providers": [{"aescbc": {"keys": [{"name": "k"}]}}]}],
            "resources[0].providers[0].aescbc.keys[0].secret: Required value: secret is a "
            "mandatory field for a key",
        ),
        (
            [
                {
                    "resources": ["secrets"],
                    "providers": [{"aescbc": {"keys": [{"name": "k", "secret": "!!"}]}}],
                }
            ],
            'resources[0].providers[0].aescbc.keys[0].secret: Invalid value: "REDACTED": '
            "secrets must be base64 encoded",
        ),
        (
            [
                {
                    "resources": ["secrets"],
                    "providers": [{"secretbox": {"keys": [{"name": "k", "secret": "c2hvcnQ="}]}}],
                }
            ],
            'resources[0].providers[0].secretbox.keys[0].secret: Invalid value: "REDACTED": '
            "secret is not of the expected length, got 5, expected one of [32]",
        ),
        (
            [{"resources": ["secrets"], "providers": []}],
            "resources[0].providers: Required value: at least one resources[0].providers is "
            "required",
        ),
        (
            [{"resources": ["Secrets"], "providers": [{"identity": {}}]}],
            'resources[0].resources[0]: Invalid value: "Secrets": resource name should not '
            "contain capital letters",
        ),
        (
            [{"resources": ["secrets", "*."], "providers": [{"identity": {}}]}],
            "using overlapping resources such as 'secrets' and '*.' in the same resource list "
            "is not allowed as they will be masked",
        ),
        (
            [{"resources": ["secrets"], "providers": [{"kms": {"name": "v"}}]}],
            "resources[0].providers[0].kms: Forbidden: KMS providers are not supported",
        ),
        ([], "resources: Required value: at least one resources is required"),
    ],
)
def test_bad_configs_name_the_file_and_the_field(
    tmp_path: Path, resources: list[dict[str, Any]], message: str
) -> None:
    path = _write(tmp_path, resources)
    with pytest.raises(EncryptionConfigError) as err:
        load_encryption_config(path)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f'error while parsing file "{path}": ')
    assert message in text


def test_wrong_kind_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfig\n")
    with pytest.raises(EncryptionConfigError, match='no kind "EncryptionConfig" is registered'):
        load_encryption_config(path)
    path.write_text("")
    with pytest.raises(EncryptionConfigError, match="is empty"):
        load_encryption_config(path)
