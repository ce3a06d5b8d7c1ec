"""Encryption at rest: values encrypted on their way into the store, decrypted on the way out.

Upstream encrypts at its storage boundary, so the database (SQLite file or etcd) never
holds the plaintext of a Secret while the watch cache and every reader above see plain
objects. :class:`EncryptingStore` is that boundary here: it wraps any :class:`Store` and
runs the values under chosen key prefixes through a list of :class:`Transformer`.

A stored value names how it was written, in upstream's format::

    k8s:enc:aescbc:v1:<key name>:<16-byte IV><AES-CBC ciphertext, PKCS#7 padded>
    k8s:enc:aesgcm:v1:<key name>:<12-byte nonce><AES-GCM ciphertext+tag>  (AAD: the key)
    k8s:enc:secretbox:v1:<key name>:<24-byte nonce><XSalsa20-Poly1305 box>

and plaintext (the ``identity`` provider) has no prefix. The first transformer of a
resource writes; every transformer is tried for reading, the one whose prefix matches
decrypts. A value read with any but the first is *stale* (``KeyValue.stale``), so that an
update that changes nothing still rewrites it with the current key (how a re-encryption
moves every Secret to a new key), as upstream's ``GuaranteedUpdate`` does.

The transformers for a resource can be swapped while the store serves
(:meth:`EncryptingStore.set_rules`): a key rotation needs no restart.

A value no configured key can read (its key was removed from the configuration) fails a
``get`` with :class:`DecryptionError`; lists and watches leave it out and log it, so one
such Secret does not take down the watch cache of every resource.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyk8s.storage._types import (
    Conflict,
    Event,
    EventType,
    KeyValue,
    ListResult,
    Store,
    StoreError,
    Watch,
)

log = logging.getLogger(__name__)

#: what every encrypted value starts with
ENCRYPTED_PREFIX = b"k8s:enc:"


class DecryptionError(StoreError):
    """A stored value no configured transformer can read (wrong key, corrupt value)."""


class Transformer(Protocol):
    """One provider key: its prefix, and the two directions."""

    @property
    def prefix(self) -> bytes: ...

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        """``plaintext`` as stored under ``key``, without the prefix."""
        ...

    def decrypt(self, data: bytes, key: str) -> bytes:
        """The plaintext of ``data`` (the stored value after the prefix)."""
        ...


def provider_prefix(provider: str, key_name: str) -> bytes:
    return f"k8s:enc:{provider}:v1:{key_name}:".encode()


class IdentityTransformer:
    """Plaintext: writes unchanged; reads anything that is not an encrypted value."""

    prefix = b""

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        return plaintext

    def decrypt(self, data: bytes, key: str) -> bytes:
        if data.startswith(ENCRYPTED_PREFIX):
            raise DecryptionError("identity transformer tried to read encrypted data")
        return data


class AESCBCTransformer:
    """``aescbc``: a random 16-byte IV, then AES-CBC of the PKCS#7-padded value."""

    def __init__(self, key_name: str, secret: bytes) -> None:
        self.prefix = provider_prefix("aescbc", key_name)
        self._algorithm = algorithms.AES(secret)

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(self._algorithm, modes.CBC(iv)).encryptor()
        return iv + encryptor.update(padded) + encryptor.finalize()

    def decrypt(self, data: bytes, key: str) -> bytes:
        if len(data) < 32 or len(data) % 16:
            raise DecryptionError("the stored data is not a whole number of AES blocks")
        decryptor = Cipher(self._algorithm, modes.CBC(data[:16])).decryptor()
        padded = decryptor.update(data[16:]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise DecryptionError("invalid PKCS7 data (empty or not padded)") from None


class AESGCMTransformer:
    """``aesgcm``: a random 12-byte nonce, then AES-GCM sealed with the storage key as
    additional data (a value copied to another key does not decrypt)."""

    def __init__(self, key_name: str, secret: bytes) -> None:
        self.prefix = provider_prefix("aesgcm", key_name)
        self._aead = AESGCM(secret)

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, key.encode())

    def decrypt(self, data: bytes, key: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(data[:12], data[12:], key.encode())
        except (InvalidTag, ValueError):
            raise DecryptionError("cipher: message authentication failed") from None


class SecretboxTransformer:
    """``secretbox``: a random 24-byte nonce, then NaCl's XSalsa20-Poly1305 box."""

    def __init__(self, key_name: str, secret: bytes) -> None:
        from nacl.secret import SecretBox

        self.prefix = provider_prefix("secretbox", key_name)
        self._box = SecretBox(secret)

    def encrypt(self, plaintext: bytes, key: str) -> bytes:
        return bytes(self._box.encrypt(plaintext))

    def decrypt(self, data: bytes, key: str) -> bytes:
        from nacl.exceptions import CryptoError

        try:
            return bytes(self._box.decrypt(data))
        except CryptoError:
            raise DecryptionError("output array was not large enough for encryption") from None


#: the keyed providers by their EncryptionConfiguration name
PROVIDERS: dict[
    str, type[AESCBCTransformer] | type[AESGCMTransformer] | type[SecretboxTransformer]
] = {
    "aescbc": AESCBCTransformer,
    "aesgcm": AESGCMTransformer,
    "secretbox": SecretboxTransformer,
}


@dataclass(frozen=True, slots=True)
class Rule:
    """The transformers of every key under ``key_prefix`` (first one writes)."""

    key_prefix: str
    transformers: tuple[Transformer, ...]


class EncryptingStore:
    """A :class:`Store` whose values under the rules' prefixes are encrypted at rest.

    The first rule whose prefix a key starts with applies; keys under no rule pass
    through unchanged.
    """

    def __init__(self, inner: Store, rules: Sequence[Rule] = ()) -> None:
        self.inner = inner
        self.rules: tuple[Rule, ...] = tuple(rules)

    @property
    def revision_in_memory(self) -> bool:
        """Whether the inner store answers :meth:`current_revision` without suspending."""
        return bool(getattr(self.inner, "revision_in_memory", False))

    def set_rules(self, rules: Sequence[Rule]) -> None:
        """Use new transformers from the next read or write on (a reloaded config)."""
        self.rules = tuple(rules)

    def _transformers(self, key: str) -> tuple[Transformer, ...] | None:
        for rule in self.rules:
            if key.startswith(rule.key_prefix):
                return rule.transformers
        return None

    def _encrypt(self, key: str, value: bytes) -> bytes:
        transformers = self._transformers(key)
        if not transformers:
            return value
        first = transformers[0]
        return first.prefix + first.encrypt(value, key)

    def _decrypt(self, kv: KeyValue) -> KeyValue:
        transformers = self._transformers(kv.key)
        if transformers is None:
            return kv
        if not kv.value:  # a delete event's empty value
            return kv
        for i, transformer in enumerate(transformers):
            if kv.value.startswith(transformer.prefix):
                try:
                    plain = transformer.decrypt(kv.value[len(transformer.prefix) :], kv.key)
                except DecryptionError:
                    if transformer.prefix:
                        raise
                    continue  # identity first (encryption being turned off): try the rest
                return dataclasses.replace(kv, value=plain, stale=i != 0)
        raise DecryptionError(f"no matching prefix found for the value of {kv.key}")

    def _decrypt_or_none(self, kv: KeyValue | None) -> KeyValue | None:
        return None if kv is None else self._decrypt(kv)

    def _conflict(self, err: Conflict) -> Conflict:
        return Conflict(err.key, err.expected, self._decrypt_or_none(err.current))

    # ------------------------------------------------------------------ the Store

    async def get(self, key: str, revision: int = 0) -> KeyValue:
        return self._decrypt(await self.inner.get(key, revision))

    async def list(
        self, prefix: str, *, limit: int = 0, start: str = "", revision: int = 0
    ) -> ListResult:
        page = await self.inner.list(prefix, limit=limit, start=start, revision=revision)
        kvs = [kv for kv in map(self._readable, page.kvs) if kv is not None]
        return ListResult(kvs, page.revision, page.remaining)

    def _readable(self, kv: KeyValue) -> KeyValue | None:
        """A listed or watched value decrypted, or None (logged) when no configured key
        reads it: one Secret under a removed key must not take every list down."""
        try:
            return self._decrypt(kv)
        except DecryptionError as err:
            log.error("cannot decrypt %s: %s", kv.key, err)
            return None

    async def count(self, prefix: str) -> int:
        return await self.inner.count(prefix)

    async def create(self, key: str, value: bytes, *, ttl: int = 0) -> KeyValue:
        kv = await self.inner.create(key, self._encrypt(key, value), ttl=ttl)
        return dataclasses.replace(kv, value=value)

    async def update(
        self, key: str, value: bytes, *, expected_revision: int, ttl: int = 0
    ) -> KeyValue:
        try:
            kv = await self.inner.update(
                key, self._encrypt(key, value), expected_revision=expected_revision, ttl=ttl
            )
        except Conflict as err:
            raise self._conflict(err) from None
        return dataclasses.replace(kv, value=value)

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        try:
            return self._decrypt(await self.inner.delete(key, expected_revision=expected_revision))
        except Conflict as err:
            raise self._conflict(err) from None

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compacted_revision(self) -> int:
        return await self.inner.compacted_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def watch(self, prefix: str, *, after: int | None = None) -> Watch:
        return _DecryptingWatch(await self.inner.watch(prefix, after=after), self)

    async def close(self) -> None:
        await self.inner.close()


class _DecryptingWatch(Watch):
    def __init__(self, inner: Watch, store: EncryptingStore) -> None:
        self._inner = inner
        self._store = store

    async def __anext__(self) -> Event:
        while True:
            ev = self._readable(await self._inner.__anext__())
            if ev is not None:
                return ev

    def take_ready(self) -> tuple[list[Event], int]:
        events, progress = self._inner.take_ready()
        return [ev for ev in map(self._readable, events) if ev is not None], progress

    def _readable(self, ev: Event) -> Event | None:
        """The event decrypted; None when its value cannot be (logged: the next event)."""
        kv = self._store._readable(ev.kv) if ev.type is EventType.PUT else ev.kv
        if kv is None:
            return None
        prev = None if ev.prev_kv is None else self._store._readable(ev.prev_kv)
        return Event(ev.type, kv, prev)

    async def close(self) -> None:
        await self._inner.close()
