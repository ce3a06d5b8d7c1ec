"""Encryption at rest at the storage boundary: upstream's value formats, key order,
staleness, and plaintext everywhere above the store (reads, watches, conflicts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyk8s.storage import Conflict, EventType
from pyk8s.storage.encryption import (
    AESCBCTransformer,
    AESGCMTransformer,
    DecryptionError,
    EncryptingStore,
    IdentityTransformer,
    Rule,
    SecretboxTransformer,
    Transformer,
)
from pyk8s.storage.sqlite import SqliteStore

KEY = "/registry/core/secrets/default/db"
VALUE = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


@pytest.mark.parametrize(
    ("transformer", "prefix", "overhead"),
    [
        (AESCBCTransformer("k1", os.urandom(32)), b"k8s:enc:aescbc:v1:k1:", 16),
        (AESGCMTransformer("k1", os.urandom(16)), b"k8s:enc:aesgcm:v1:k1:", 12 + 16),
        (SecretboxTransformer("k1", os.urandom(32)), b"k8s:enc:secretbox:v1:k1:", 24 + 16),
    ],
)
def test_each_provider_writes_upstreams_format(
    transformer: Transformer, prefix: bytes, overhead: int
) -> None:
    assert transformer.prefix == prefix
    sealed = transformer.encrypt(VALUE, KEY)
    assert VALUE not in sealed
    assert transformer.decrypt(sealed, KEY) == VALUE
    assert transformer.encrypt(VALUE, KEY) != sealed  # a fresh IV / nonce every time
    if isinstance(transformer, AESCBCTransformer):  # IV + PKCS#7-padded blocks
        assert len(sealed) == 16 + (len(VALUE) // 16 + 1) * 16
    else:
        assert len(sealed) == len(VALUE) + overhead


def test_aesgcm_binds_the_value_to_its_key() -> None:
    gcm = AESGCMTransformer("k1", os.urandom(32))
    sealed = gcm.encrypt(VALUE, KEY)
    with pytest.raises(DecryptionError):
        gcm.decrypt(sealed, KEY + "-copy")


def test_a_wrong_key_does_not_decrypt() -> None:
    sealed = AESCBCTransformer("k1", os.urandom(32)).encrypt(VALUE, KEY)
    with pytest.raises(DecryptionError):
        AESCBCTransformer("k1", os.urandom(32)).decrypt(sealed, KEY)


async def test_first_key_writes_every_key_reads_and_older_reads_are_stale(tmp_path: Path) -> None:
    inner = await SqliteStore.open(tmp_path / "state.db")
    old, new = AESCBCTransformer("old", os.urandom(32)), AESCBCTransformer("new", os.urandom(32))
    store = EncryptingStore(inner, [Rule("/registry/core/secrets/", (old, IdentityTransformer()))])
    try:
        await inner.create(KEY + "-plain", VALUE)  # written before encryption was on
        created = await store.create(KEY, VALUE)
        assert created.value == VALUE
        assert (await inner.get(KEY)).value.startswith(b"k8s:enc:aescbc:v1:old:")
        assert not (await store.get(KEY)).stale
        plain = await store.get(KEY + "-plain")
        assert plain.value == VALUE and plain.stale

        store.set_rules([Rule("/registry/core/secrets/", (new, old, IdentityTransformer()))])
        read = await store.get(KEY)
        assert read.value == VALUE and read.stale
        await store.update(KEY, VALUE, expected_revision=read.mod_revision)
        assert (await inner.get(KEY)).value.startswith(b"k8s:enc:aescbc:v1:new:")
        assert not (await store.get(KEY)).stale

        # identity first (encryption being turned off): encrypted values still read,
        # stale, so that an update stores them as they are
        store.set_rules([Rule("/registry/core/secrets/", (IdentityTransformer(), new))])
        read = await store.get(KEY)
        assert read.value == VALUE and read.stale
        assert not (await store.get(KEY + "-plain")).stale

        store.set_rules([Rule("/registry/core/secrets/", (new,))])
        with pytest.raises(DecryptionError, match="no matching prefix"):
            await store.get(KEY + "-plain")
        # a list leaves out what no key reads (and logs it) instead of failing whole
        listed = await store.list("/registry/core/secrets/")
        assert [kv.key for kv in listed.kvs] == [KEY]
        # other resources pass through
        await store.create("/registry/core/configmaps/default/c", VALUE)
        assert (await inner.get("/registry/core/configmaps/default/c")).value == VALUE
    finally:
        await store.close()


async def test_watch_events_and_conflicts_carry_plaintext(tmp_path: Path) -> None:
    rule = Rule("/registry/", (AESCBCTransformer("k", os.urandom(32)),))
    store = EncryptingStore(await SqliteStore.open(tmp_path / "state.db"), [rule])
    try:
        start = await store.current_revision()
        first = await store.create(KEY, VALUE)
        second = await store.update(KEY, VALUE + b" ", expected_revision=first.mod_revision)
        with pytest.raises(Conflict) as conflict:
            await store.update(KEY, b"x", expected_revision=first.mod_revision)
        assert conflict.value.current is not None
        assert conflict.value.current.value == VALUE + b" "
        await store.delete(KEY, expected_revision=second.mod_revision)
        watch = await store.watch("/registry/", after=start)
        events = [await watch.__anext__() for _ in range(3)]
        await watch.close()
        assert [e.type for e in events] == [EventType.PUT, EventType.PUT, EventType.DELETE]
        assert events[0].kv.value == VALUE and events[0].prev_kv is None
        assert events[1].kv.value == VALUE + b" "
        assert events[1].prev_kv is not None and events[1].prev_kv.value == VALUE
        assert events[2].prev_kv is not None and events[2].prev_kv.value == VALUE + b" "
    finally:
        await store.close()
