"""The RBAC authorizer: Roles and ClusterRoles granted through RoleBindings and
ClusterRoleBindings, read from the API server's watch cache.

Why indexed by subject: this runs on every request. A cluster with a thousand
RoleBindings must not scan them all to answer one user, so the bindings are kept in maps
keyed by the subject they name -- a user (service accounts become their user name,
``system:serviceaccount:<ns>:<name>``) or a group -- per namespace for RoleBindings. A
request looks up its user and each of its groups, then checks the rules of the few roles
those bindings reference. The maps follow the cache through one cache watch on the
``rbac.authorization.k8s.io`` prefix, drained at the start of every check, so a request
sees every RBAC change the cache has applied before it.

As upstream's authorizer, RBAC only allows or abstains (never denies): ClusterRoleBindings
are visited first, then the RoleBindings of the request's namespace; the first rule that
allows decides, with upstream's reason (``RBAC: allowed by RoleBinding "b/ns" of Role "r"
to User "u"``). A binding to a role that does not exist is reported in the abstain reason
(``RBAC: clusterrole.rbac.authorization.k8s.io "x" not found``), as upstream's does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import Decision, RequestAttributes
from pyk8s.apiserver.rbac.rules import CompiledRules, Rule, rules_from_json
from pyk8s.apiserver.reviews import NonResourceRule, ResourceRule, Rules
from pyk8s.apiserver.watchcache import DELETED, CacheWatcher, WatchCache

__all__ = ["Binding", "RBACAuthorizer", "Subject"]

log = logging.getLogger(__name__)

GROUP = "rbac.authorization.k8s.io"
PREFIX = f"/registry/{GROUP}/"
SA_PREFIX = "system:serviceaccount:"

#: users' compiled grants kept at once (a cache of pointers: emptied when full)
MAX_COMPILED = 16384

_ROLES = f"{PREFIX}roles/"
_CLUSTER_ROLES = f"{PREFIX}clusterroles/"
_BINDINGS = f"{PREFIX}rolebindings/"
_CLUSTER_BINDINGS = f"{PREFIX}clusterrolebindings/"


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str  # User | Group | ServiceAccount
    name: str
    namespace: str = ""

    def describe(self, binding_namespace: str) -> str:
        """upstream's ``describeSubject``."""
        if self.kind == "ServiceAccount":
            return f'{self.kind} "{self.name}/{self.namespace or binding_namespace}"'
        return f'{self.kind} "{self.name}"'


@dataclass(frozen=True, slots=True)
class Binding:
    """A RoleBinding (``namespace`` set) or ClusterRoleBinding, as the index needs it."""

    name: str
    namespace: str
    role_kind: str  # Role | ClusterRole
    role_name: str
    subjects: tuple[Subject, ...]

    @classmethod
    def from_json(cls, obj: dict[str, Any], namespaced: bool) -> Binding:
        meta = obj.get("metadata") or {}
        ref = obj.get("roleRef") or {}
        subjects = tuple(
            Subject(str(s.get("kind", "")), str(s.get("name", "")), str(s.get("namespace") or ""))
            for s in obj.get("subjects") or ()
            if isinstance(s, dict)
        )
        return cls(
            str(meta.get("name", "")),
            str(meta.get("namespace", "")) if namespaced else "",
            str(ref.get("kind", "")),
            str(ref.get("name", "")),
            subjects,
        )

    def describe(self, subject: Subject) -> str:
        """upstream's binding describers (the reason of an allow)."""
        if self.namespace:
            what = f'RoleBinding "{self.name}/{self.namespace}"'
        else:
            what = f'ClusterRoleBinding "{self.name}"'
        role = f'{self.role_kind} "{self.role_name}"'
        return f"{what} of {role} to {subject.describe(self.namespace)}"

    def index_keys(self) -> Iterator[tuple[str, str, Subject]]:
        """(``"user"``|``"group"``, name, subject) for each subject this binding names."""
        for s in self.subjects:
            if s.kind == "User":
                yield "user", s.name, s
            elif s.kind == "Group":
                yield "group", s.name, s
            elif s.kind == "ServiceAccount":
                ns = s.namespace or self.namespace
                if ns and s.name:
                    yield "user", f"{SA_PREFIX}{ns}:{s.name}", s


#: (binding, the subject of it that names the user)
Grant = tuple[Binding, Subject]
#: a user's compiled roles with their allow reasons, and the abstain reason
_Grants = tuple[tuple[tuple[CompiledRules, str], ...], str]


class RBACAuthorizer:
    """Upstream's ``RBACAuthorizer`` over the watch cache (see the module docstring)."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._watcher: CacheWatcher | None = None
        self._cluster_roles: dict[str, tuple[Rule, ...]] = {}
        self._roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self._bindings: dict[str, Binding] = {}
        #: (namespace, "user"|"group", name) -> {binding key: grant}; namespace "" is
        #: the ClusterRoleBindings
        self._grants: dict[tuple[str, str, str], dict[str, Grant]] = {}
        #: the roles' rules compiled for the per-request check, and per (user, groups,
        #: namespace) the compiled roles the user's bindings grant, in visiting order,
        #: with their allow reasons, and the abstain reason; emptied by every RBAC change
        self._compiled_roles: dict[tuple[str, str, str], CompiledRules] = {}
        self._compiled: dict[tuple[str, tuple[str, ...], str], _Grants] = {}

    # ------------------------------------------------------------------ the index

    def sync(self) -> None:
        """Apply the RBAC changes the cache has seen since the last call."""
        w = self._watcher
        if w is None or w.closed:
            self._rebuild()
            return
        queue = w.queue
        if queue.empty():
            return
        self._compiled.clear()
        self._compiled_roles.clear()
        while not queue.empty():
            ev = queue.get_nowait()
            if ev is None:  # the cache relisted or stopped: start over
                self._rebuild()
                return
            if ev.type == DELETED:
                self._drop(ev.key)
            else:
                self._put(ev.key, ev.entry.obj)

    def _rebuild(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        self._cluster_roles.clear()
        self._roles.clear()
        self._bindings.clear()
        self._grants.clear()
        self._compiled.clear()
        self._compiled_roles.clear()
        revision = self.cache.revision
        for prefix in (_CLUSTER_ROLES, _ROLES, _CLUSTER_BINDINGS, _BINDINGS):
            for entry in self.cache.list(prefix):
                self._put(entry.key, entry.obj)
        self._watcher = self.cache.watch(PREFIX, revision)

    def _put(self, key: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if key.startswith(_CLUSTER_ROLES):
            self._cluster_roles[str(meta.get("name", ""))] = rules_from_json(obj.get("rules"))
        elif key.startswith(_ROLES):
            role = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            self._roles[role] = rules_from_json(obj.get("rules"))
        elif key.startswith((_BINDINGS, _CLUSTER_BINDINGS)):
            self._drop(key)
            binding = Binding.from_json(obj, namespaced=key.startswith(_BINDINGS))
            self._bindings[key] = binding
            for kind, subject_name, subject in binding.index_keys():
                grants = self._grants.setdefault((binding.namespace, kind, subject_name), {})
                grants[key] = (binding, subject)

    def _drop(self, key: str) -> None:
        if key.startswith(_CLUSTER_ROLES):
            self._cluster_roles.pop(key[len(_CLUSTER_ROLES) :], None)
        elif key.startswith(_ROLES):
            ns, _, name = key[len(_ROLES) :].partition("/")
            self._roles.pop((ns, name), None)
        else:
            binding = self._bindings.pop(key, None)
            if binding is None:
                return
            for kind, name, _ in binding.index_keys():
                index = (binding.namespace, kind, name)
                grants = self._grants.get(index)
                if grants is not None:
                    grants.pop(key, None)
                    if not grants:
                        del self._grants[index]

    # ------------------------------------------------------------------ lookups

    def _grants_for(self, user: UserInfo, namespace: str) -> Iterator[Grant]:
        """The user's grants: ClusterRoleBindings first, then the namespace's."""
        namespaces = ("", namespace) if namespace else ("",)
        grants = self._grants
        for ns in namespaces:
            found = grants.get((ns, "user", user.name))
            if found:
                yield from found.values()
            for group in user.groups:
                found = grants.get((ns, "group", group))
                if found:
                    yield from found.values()

    def role_rules(self, kind: str, name: str, namespace: str) -> tuple[Rule, ...] | None:
        """The rules of a referenced role (None when it does not exist)."""
        if kind == "ClusterRole":
            return self._cluster_roles.get(name)
        if kind == "Role" and namespace:
            return self._roles.get((namespace, name))
        return None

    def _rules(self, binding: Binding) -> tuple[Rule, ...] | None:
        return self.role_rules(binding.role_kind, binding.role_name, binding.namespace)

    def rules_of(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        """Every rule the user holds in ``namespace`` ("" = cluster-wide only), and the
        errors met on the way (bindings to missing roles), as upstream's ``RulesFor``."""
        self.sync()
        rules: list[Rule] = []
        errors: list[str] = []
        for binding, _ in self._grants_for(user, namespace):
            found = self._rules(binding)
            if found is None:
                errors.append(_not_found(binding))
            else:
                rules.extend(found)
        return rules, errors

    # ------------------------------------------------------------------ Authorizer

    def _compiled_grants(self, user: UserInfo, namespace: str) -> _Grants:
        """The user's compiled roles in ``namespace`` (visiting order), with the allow
        reason of each, and the abstain reason."""
        key = (user.name, user.groups, namespace)
        found = self._compiled.get(key)
        if found is not None:
            return found
        roles: list[tuple[CompiledRules, str]] = []
        errors: list[str] = []
        for binding, subject in self._grants_for(user, namespace):
            role_ns = binding.namespace if binding.role_kind == "Role" else ""
            role_key = (binding.role_kind, role_ns, binding.role_name)
            compiled = self._compiled_roles.get(role_key)
            if compiled is None:
                rules = self._rules(binding)
                if rules is None:
                    errors.append(_not_found(binding))
                    continue
                compiled = self._compiled_roles[role_key] = CompiledRules(rules)
            roles.append((compiled, f"RBAC: allowed by {binding.describe(subject)}"))
        if len(self._compiled) >= MAX_COMPILED:
            self._compiled.clear()
        found = self._compiled[key] = (tuple(roles), _aggregate(errors) if errors else "")
        return found

    async def authorize(self, user: UserInfo, attributes: RequestAttributes) -> Decision:
        self.sync()
        roles, abstain_reason = self._compiled_grants(user, attributes.namespace)
        for compiled, reason in roles:
            if compiled.allows(attributes):
                return Decision.allow(reason)
        return Decision.abstain(abstain_reason)

    async def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        """What a SelfSubjectRulesReview of ``user`` in ``namespace`` answers."""
        rules, errors = self.rules_of(user, namespace)
        return Rules(
            tuple(
                ResourceRule(r.verbs, r.api_groups, r.resources, r.resource_names)
                for r in rules
                if r.resources
            ),
            tuple(
                NonResourceRule(r.verbs, r.non_resource_urls) for r in rules if r.non_resource_urls
            ),
            False,
            _aggregate(errors) if errors else "",
        )


def _not_found(binding: Binding) -> str:
    return f'{binding.role_kind.lower()}.{GROUP} "{binding.role_name}" not found'


def _aggregate(errors: Iterable[str]) -> str:
    """``RBAC: `` and upstream's aggregate error text (one error bare, several listed)."""
    items = list(errors)
    return "RBAC: " + (items[0] if len(items) == 1 else "[" + ", ".join(items) + "]")
