"""Privilege-escalation prevention on Role, ClusterRole and binding writes.

Why: without it anyone allowed to write Roles could write themselves ``*`` on ``*``.
Upstream (``registry/rbac/*/policybased``) lets a user create or update a role only with
permissions the user already holds (by RBAC), or with the ``escalate`` verb on that role;
and create a binding only to a role whose permissions the user holds, or with the
``bind`` verb on it. ``system:masters`` is exempt. A refusal is 403 Forbidden with
upstream's text::

    roles.rbac.authorization.k8s.io "r" is forbidden: user "bob" (groups=["g"]) is
    attempting to grant RBAC permissions not currently held:
    {APIGroups:[""], Resources:["secrets"], Verbs:["get"]}

The check runs before admission, as upstream's storage runs it before its create.
"""

from __future__ import annotations

from typing import Any

from pyk8s.api.errors import StatusError
from pyk8s.apiserver.admission import CREATE, UPDATE, Attributes
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import Authorizer, RequestAttributes
from pyk8s.apiserver.rbac.authorizer import GROUP, RBACAuthorizer
from pyk8s.apiserver.rbac.rules import Rule, compact_string, covers, rules_from_json

__all__ = ["FULL_AUTHORITY", "EscalationCheck"]

PRIVILEGED_GROUP = "system:masters"

#: what an aggregationRule can gather: everything
FULL_AUTHORITY = (Rule(("*",), ("*",), ("*",)), Rule(("*",), non_resource_urls=("*",)))

_ROLE_KINDS = {"roles": "Role", "clusterroles": "ClusterRole"}


def _go_strings(values: tuple[str, ...]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _forbidden(attrs: Attributes, message: str) -> StatusError:
    r = attrs.resource
    details = {"name": attrs.name, "group": r.group, "kind": r.plural}
    return StatusError(
        403, "Forbidden", f'{r.plural}.{r.group} "{attrs.name}" is forbidden: {message}', details
    )


class EscalationCheck:
    """Refuses Role/ClusterRole/binding writes that would grant what the user lacks."""

    def __init__(self, rbac: RBACAuthorizer, authorizer: Authorizer) -> None:
        self.rbac = rbac
        self.authorizer = authorizer

    async def __call__(self, attrs: Attributes) -> None:
        if attrs.operation not in (CREATE, UPDATE) or attrs.subresource or attrs.obj is None:
            return
        user = attrs.user
        if PRIVILEGED_GROUP in user.groups:
            return
        plural = attrs.resource.plural
        if plural in _ROLE_KINDS:
            await self._role(attrs, user)
        else:
            await self._binding(attrs, user)

    async def _allowed(
        self, user: UserInfo, verb: str, plural: str, namespace: str, name: str
    ) -> bool:
        decision = await self.authorizer.authorize(
            user,
            RequestAttributes(
                verb=verb,
                api_group=GROUP,
                resource=plural,
                namespace=namespace,
                name=name,
                api_version="v1",
            ),
        )
        return decision.allowed

    def _missing(self, user: UserInfo, namespace: str, wanted: tuple[Rule, ...]) -> str:
        """upstream's ConfirmNoEscalation: "" when the user holds every rule."""
        owned, errors = self.rbac.rules_of(user, namespace)
        missing = covers(owned, wanted)
        if not missing:
            return ""
        message = (
            f'user "{user.name}" (groups={_go_strings(user.groups)}) is attempting to grant '
            "RBAC permissions not currently held:\n" + "\n".join(compact_string(r) for r in missing)
        )
        if errors:
            message += "; resolution errors: [" + ", ".join(errors) + "]"
        return message

    async def _role(self, attrs: Attributes, user: UserInfo) -> None:
        obj: dict[str, Any] = attrs.obj or {}
        if await self._allowed(
            user, "escalate", attrs.resource.plural, attrs.namespace, attrs.name
        ):
            return
        old = attrs.old or {}
        rules = rules_from_json(obj.get("rules"))
        if attrs.operation == UPDATE and rules == rules_from_json(old.get("rules")):
            rules = ()  # upstream: an update that does not change the rules is fine
        problem = self._missing(user, attrs.namespace, rules)
        if problem:
            raise _forbidden(attrs, problem)
        aggregation = obj.get("aggregationRule")
        changed = attrs.operation == CREATE or aggregation != old.get("aggregationRule")
        if aggregation and changed and self._missing(user, attrs.namespace, FULL_AUTHORITY):
            raise _forbidden(attrs, "must have cluster-admin privileges to use the aggregationRule")

    async def _binding(self, attrs: Attributes, user: UserInfo) -> None:
        obj: dict[str, Any] = attrs.obj or {}
        ref = obj.get("roleRef") or {}
        if attrs.operation == UPDATE and ref == (attrs.old or {}).get("roleRef"):
            return
        kind, name = str(ref.get("kind", "")), str(ref.get("name", ""))
        plural = {"Role": "roles", "ClusterRole": "clusterroles"}.get(kind, "")
        if plural and await self._allowed(user, "bind", plural, attrs.namespace, name):
            return
        self.rbac.sync()
        rules = self.rbac.role_rules(kind, name, attrs.namespace)
        if rules is None:
            raise _forbidden(attrs, f'{kind.lower()}.{GROUP} "{name}" not found')
        problem = self._missing(user, attrs.namespace, rules)
        if problem:
            raise _forbidden(attrs, problem)
