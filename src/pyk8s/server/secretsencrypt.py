"""``pyk8s secrets-encrypt``: k3s's command for secrets encryption at rest.

It talks to a running server's ``/v1-k3s/encrypt/*`` endpoints (see
:mod:`pyk8s.apiserver.secretsencrypt`) with the admin kubeconfig, and prints what k3s
prints: ``status`` the state and the keys, ``enable``/``disable``/``prepare``/``rotate``/
``reencrypt``/``rotate-keys`` one line once the server has taken the step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyk8s.client import Client

STAGES = {
    "prepare": "prepare",
    "rotate": "rotate",
    "reencrypt": "reencrypt_active",
    "rotate-keys": "rotate_keys",
}
ENABLE = {"enable": True, "disable": False}
DONE = {
    "enable": "secrets-encryption enabled",
    "disable": "secrets-encryption disabled",
    "prepare": "prepare completed successfully",
    "rotate": "rotate completed successfully",
    "reencrypt": "reencryption started",
    "rotate-keys": "keys rotated, reencryption started",
}


def format_status(status: dict[str, Any]) -> str:
    """k3s's text for an EncryptionState."""
    if "enable" not in status:
        return "Encryption Status: Disabled, no configuration file found"
    out = f"Encryption Status: {'Enabled' if status['enable'] else 'Disabled'}\n"
    out += f"Current Rotation Stage: {status.get('stage', '')}\n"
    if status.get("hashMatch"):
        out += "Server Encryption Hashes: All hashes match\n"
    else:
        out += f"Server Encryption Hashes: {status.get('hashError', '')}\n"
    rows = [("Active", "Key Type", "Name"), ("------", "--------", "----")]
    if status.get("activeKey"):
        rows.append((" *", "AES-CBC", status["activeKey"]))
    rows += [("", "AES-CBC", key) for key in status.get("inactiveKeys", [])]
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(2)]
    table = "".join(f"{r[0]:<{widths[0]}}{r[1]:<{widths[1]}}{r[2]}\n" for r in rows)
    return out + "\n" + table


async def run(
    kubeconfig: Path, command: str, *, force: bool = False, skip: bool = False, output: str = ""
) -> str:
    """Do ``command`` against the server; what to print."""
    async with Client.from_kubeconfig(str(kubeconfig), timeout=70.0) as client:
        if command == "status":
            status = await client.request("GET", "/v1-k3s/encrypt/status")
            if output == "json":
                return json.dumps(status, indent="\t")
            return format_status(status)
        body: dict[str, Any] = {"stage": STAGES.get(command), "force": force, "skip": skip}
        if command in ENABLE:
            body = {"enable": ENABLE[command]}
        await client.request("PUT", "/v1-k3s/encrypt/config", body=body)
        return DONE[command]
