"""k3s's secrets-encryption tool, server side: key rotation and re-encryption while serving.

``pyk8s server --secrets-encryption`` keeps an EncryptionConfiguration at
``DATA_DIR/server/cred/encryption-config.json`` (aescbc for secrets, then identity) and
``pyk8s secrets-encrypt`` drives it through k3s's endpoints on the API server:

* ``GET /v1-k3s/encrypt/status``: enabled or not, the rotation stage, the active key and
  the inactive ones (k3s's ``EncryptionState``);
* ``PUT /v1-k3s/encrypt/config`` with ``{"enable": true|false}``: aescbc or identity
  first (the other still reads);
* ``PUT /v1-k3s/encrypt/config`` with ``{"stage": ...}``: ``prepare`` (a new key, last:
  it decrypts but does not encrypt yet), ``rotate`` (the newest key first),
  ``reencrypt_active`` (rewrite every Secret with the active key, then drop the others
  unless ``skip``), ``rotate_keys`` (all of it in one step).

Unlike k3s, a changed configuration is used at once (the store's transformers are
swapped), so no step needs a restart. Re-encryption goes through the API's update path:
each Secret is read and written back unchanged; a value read through a key that no longer
encrypts is *stale* and therefore rewritten (see :mod:`pyk8s.storage.encryption`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pyk8s.api import errors
from pyk8s.apiserver.encoding import json_response
from pyk8s.apiserver.encryptionconfig import API_VERSION, KIND, rules_of
from pyk8s.storage.encryption import EncryptingStore

if TYPE_CHECKING:
    from pyk8s.apiserver.handlers import ResourceHandlers

log = logging.getLogger(__name__)

JSON = dict[str, Any]

START, PREPARE, ROTATE = "start", "prepare", "rotate"
REENCRYPT_ACTIVE, REENCRYPT_FINISHED = "reencrypt_active", "reencrypt_finished"
ROTATE_KEYS = "rotate_keys"
FIRST_KEY_NAME = "aescbckey"
#: how many times re-encryption goes over the Secrets before it gives up on a busy one
REENCRYPT_PASSES = 5


def write_private(path: Path, data: str) -> None:
    """Write a file only its owner can read (written whole, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def new_key(name: str) -> JSON:
    return {"name": name, "secret": base64.b64encode(os.urandom(32)).decode()}


def ensure_config(path: Path) -> Path:
    """k3s's generated configuration (one aescbc key for secrets, then identity), made
    once and kept."""
    if not path.exists():
        doc = {
            "kind": KIND,
            "apiVersion": API_VERSION,
            "resources": [
                {
                    "resources": ["secrets"],
                    "providers": [
                        {"aescbc": {"keys": [new_key(FIRST_KEY_NAME)]}},
                        {"identity": {}},
                    ],
                }
            ],
        }
        write_private(path, json.dumps(doc, indent=2) + "\n")
    return path


class SecretsEncryption:
    """The rotation stages over one configuration file and the store it configures."""

    def __init__(self, config_path: Path, store: EncryptingStore, handlers: ResourceHandlers):
        self.config_path = config_path
        self.state_path = config_path.with_name("encryption-state.json")
        self.store = store
        self.handlers = handlers
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ state

    def _config(self) -> JSON:
        doc: JSON = json.loads(self.config_path.read_text())
        return doc

    def _keys(self, doc: JSON) -> list[JSON] | None:
        """The aescbc keys of the secrets entry (None: secrets are not aescbc-encrypted)."""
        for entry in doc.get("resources", []):
            if "secrets" in entry.get("resources", []):
                for provider in entry.get("providers", []):
                    if "aescbc" in provider:
                        keys: list[JSON] = provider["aescbc"].setdefault("keys", [])
                        return keys
        return None

    def _enabled(self, doc: JSON) -> bool:
        for entry in doc.get("resources", []):
            if "secrets" in entry.get("resources", []):
                providers = entry.get("providers", [])
                return bool(providers) and "identity" not in providers[0]
        return False

    @property
    def stage(self) -> str:
        try:
            return str(json.loads(self.state_path.read_text())["stage"])
        except (OSError, ValueError, KeyError):
            return START

    def _set_stage(self, stage: str) -> None:
        write_private(self.state_path, json.dumps({"stage": stage}) + "\n")

    def _save(self, doc: JSON) -> None:
        """Write the configuration and use it from now on."""
        rules = rules_of(doc, self.config_path)
        write_private(self.config_path, json.dumps(doc, indent=2) + "\n")
        self.store.set_rules(rules)

    def status(self) -> JSON:
        doc = self._config()
        keys = self._keys(doc) or []
        out: JSON = {"enable": self._enabled(doc), "stage": self.stage, "hashMatch": True}
        if keys:
            out["activeKey"] = keys[0]["name"]
        if len(keys) > 1:
            out["inactiveKeys"] = [k["name"] for k in keys[1:]]
        return out

    # ------------------------------------------------------------------ stages

    async def change(self, stage: str, *, force: bool = False, skip: bool = False) -> None:
        doc = self._config()
        keys = self._keys(doc)
        if keys is None:
            raise errors.bad_request(f"secrets are not encrypted with aescbc in {self.config_path}")
        if self._task is not None and not self._task.done():
            raise errors.StatusError(409, "Conflict", "reencryption already in progress")
        current = self.stage
        required = {
            PREPARE: (START, REENCRYPT_FINISHED),
            ROTATE: (PREPARE,),
            REENCRYPT_ACTIVE: (ROTATE,),
            ROTATE_KEYS: (START, REENCRYPT_FINISHED),
        }.get(stage)
        if required is None:
            raise errors.bad_request(f"unknown stage {stage!r}")
        if current not in required and not force:
            raise errors.bad_request(
                f"error, incorrect stage: current stage is {current}, "
                f"{' or '.join(required)} is required"
            )
        name = f"{FIRST_KEY_NAME}-{datetime.now().astimezone().isoformat(timespec='seconds')}"
        if stage == PREPARE:
            keys.append(new_key(name))
            self._save(doc)
            self._set_stage(PREPARE)
        elif stage == ROTATE:
            keys.insert(0, keys.pop())
            self._save(doc)
            self._set_stage(ROTATE)
        elif stage == REENCRYPT_ACTIVE:
            self._set_stage(REENCRYPT_ACTIVE)
            self._start_reencrypt(remove_old=not skip)
        else:
            keys.insert(0, new_key(name))
            self._save(doc)
            self._set_stage(REENCRYPT_ACTIVE)
            self._start_reencrypt(remove_old=True)

    def set_enabled(self, enabled: bool) -> None:
        """k3s's enable/disable: aescbc (or identity) becomes the provider that writes;
        the other still reads, and a forced reencrypt rewrites what is stored."""
        doc = self._config()
        for entry in doc.get("resources", []):
            if "secrets" in entry.get("resources", []):
                providers: list[JSON] = entry.get("providers", [])
                identity = [p for p in providers if "identity" in p] or [{"identity": {}}]
                others = [p for p in providers if "identity" not in p]
                entry["providers"] = others + identity if enabled else identity + others
        self._save(doc)

    def _start_reencrypt(self, *, remove_old: bool) -> None:
        # a context of its own: the request that started it (and its audit event) ends now
        self._task = asyncio.create_task(
            self._reencrypt(remove_old=remove_old), context=contextvars.Context()
        )

    async def _reencrypt(self, *, remove_old: bool) -> None:
        """Every Secret read and written back through the update path (a stale value is
        rewritten with the active key; a current one is a no-op), until none is stale;
        then the inactive keys are dropped (never while a Secret still needs one)."""
        r = self.handlers.registry.get("", "v1", "secrets")
        assert r is not None
        rest = self.handlers.rest(r)
        prefix = r.key_prefix()
        rewritten = 0
        for attempt in range(REENCRYPT_PASSES + 1):
            stale = [kv for kv in (await self.store.list(prefix)).kvs if kv.stale]
            if not stale:
                break
            if attempt == REENCRYPT_PASSES:
                log.error("%d secrets still stale; keeping every key", len(stale))
                remove_old = False
                break
            for kv in stale:
                namespace, name = kv.key[len(prefix) :].split("/", 1)
                try:
                    current, stored = await rest.read(namespace, name)
                    await self.handlers.update_object(r, dict(current), current, stored, "")
                    rewritten += 1
                except errors.StatusError as err:  # gone, or written meanwhile: next pass
                    log.info("reencrypt %s/%s: %s", namespace, name, err.message)
        if remove_old:
            doc = self._config()
            keys = self._keys(doc)
            if keys:
                del keys[1:]
                self._save(doc)
        self._set_stage(REENCRYPT_FINISHED)
        log.info("secrets reencrypted", extra={"secrets": rewritten})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def serve(tool: SecretsEncryption | None, request: web.Request, path: str) -> web.Response:
    """k3s's ``/v1-k3s/encrypt/status`` (GET) and ``/v1-k3s/encrypt/config`` (PUT)."""
    if path == "/v1-k3s/encrypt/status" and request.method == "GET":
        return json_response({} if tool is None else tool.status())
    if path == "/v1-k3s/encrypt/config" and request.method == "PUT":
        if tool is None:
            raise errors.bad_request(
                "secrets encryption is not managed by this server (start pyk8s server "
                "with --secrets-encryption)"
            )
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise errors.bad_request("the body must be a JSON object") from None
        if isinstance(body, dict) and isinstance(body.get("enable"), bool):
            tool.set_enabled(body["enable"])
            return json_response({})
        if not isinstance(body, dict) or not isinstance(body.get("stage"), str):
            raise errors.bad_request('the body must name a "stage" or "enable"')
        await tool.change(body["stage"], force=bool(body.get("force")), skip=bool(body.get("skip")))
        return json_response({})
    raise errors.no_such_resource()
