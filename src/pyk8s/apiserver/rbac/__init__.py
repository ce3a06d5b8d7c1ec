"""Role-based access control (rbac.authorization.k8s.io/v1), as upstream's.

* :mod:`.rules` -- does a rule allow a request; does a set of rules cover another;
* :mod:`.authorizer` -- the RBAC authorizer over the watch cache, indexed by subject;
* :mod:`.escalation` -- no Role or binding write grants what its writer lacks;
* :mod:`.bootstrappolicy` -- upstream's default roles and bindings, as data;
* :mod:`.reconcile` -- creating and reconciling them when the API server starts.
"""

from pyk8s.apiserver.rbac.authorizer import GROUP, RBACAuthorizer
from pyk8s.apiserver.rbac.escalation import EscalationCheck
from pyk8s.apiserver.rbac.reconcile import ensure_bootstrap_policy

__all__ = [
    "GROUP",
    "RBAC_RESOURCES",
    "EscalationCheck",
    "RBACAuthorizer",
    "ensure_bootstrap_policy",
]

#: the resources whose writes :class:`EscalationCheck` guards
RBAC_RESOURCES = tuple(
    (GROUP, plural) for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
)
