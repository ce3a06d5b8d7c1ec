"""Run an add-on in a test as ``pyk8s server`` runs it: with its own identity.

``addon_kubeconfig(server, "ingress-controller", path)`` issues the component's client
certificate from the test server's CA (the user of
:data:`pyk8s.server.addon_identities.ADDON_USERS`), writes a kubeconfig with it, and
applies with the admin kubeconfig what ``pyk8s server`` creates for it: the add-ons'
RBAC policy and the objects installed on the component's behalf
(:func:`pyk8s.server.addon_identities.installs`).
"""

from __future__ import annotations

import json
from pathlib import Path

from pyk8s.apiserver.certs import Pki, issue_client_cert, write_kubeconfig
from pyk8s.server.addon_identities import ADDON_POLICY, ADDON_USERS, installs
from tests.integration.conftest import Kubectl, Server


def addon_kubeconfig(server: Server, component: str, path: Path) -> Path:
    pki = Pki.at(server.data_dir / "server" / "tls")
    user, groups = ADDON_USERS[component]
    cert = issue_client_cert(pki, user, groups)
    write_kubeconfig(path, server=server.url, pki=pki, user=user, client_cert=cert)
    items = [*ADDON_POLICY, *installs(component)]
    # created where missing, as pyk8s server does (other modules' calls made some)
    out = Kubectl(server.kubeconfig).run(
        "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        check=False,
    )  # fmt: skip
    errors = [line for line in out.stderr.splitlines() if "AlreadyExists" not in line]
    assert not errors, out.stderr
    return path


def can_i(kubeconfig: Path, *args: str) -> bool:
    """``kubectl auth can-i ARGS`` as the kubeconfig's user."""
    out = Kubectl(kubeconfig).run("auth", "can-i", *args, check=False)
    return out.stdout.strip() == "yes"
