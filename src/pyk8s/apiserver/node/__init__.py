"""Node identities and what they may do: the Node authorizer and its graph.

* :func:`node_identity` -- is a user a kubelet, and of which node (upstream's
  ``nodeidentifier``): the NodeRestriction admission plugin and the Node authorizer
  both ask it;
* :mod:`.graph` -- which objects a node's pods reference, kept from the watch cache;
* :mod:`.authorizer` -- upstream's Node authorizer over that graph.
"""

from __future__ import annotations

from pyk8s.apiserver.authn import UserInfo

__all__ = ["NODES_GROUP", "NODE_USER_PREFIX", "node_identity"]

NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"


def node_identity(user: UserInfo) -> tuple[str, bool]:
    """``(node name, is a node)``: a user named ``system:node:<name>`` in the
    ``system:nodes`` group is the node ``<name>``; ``("", True)`` for a node user whose
    name names no node (upstream refuses those with "unknown node for user")."""
    if not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return "", False
    return user.name[len(NODE_USER_PREFIX) :], True
