"""The ``authorizer`` variable of admission CEL, answered by the API server's authorizer.

Why this exists: ValidatingAdmissionPolicy validations and webhooks' ``matchConditions``
may ask ``authorizer.group('apps').resource('deployments').check('create')`` — a question
for the server's own (async) authorizer, asked from inside a synchronous CEL evaluation.
Such expressions are evaluated in a worker thread whose authz hook hands each check to
the event loop and waits for the decision; expressions without ``authorizer`` never
leave the loop. Both plugins share this so they answer the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from pyk8s.api import cel
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import RequestAttributes

JSON = dict[str, Any]
T = TypeVar("T")


async def evaluate_with_authorizer(authorizer: Any, fn: Callable[[], T]) -> T:
    """``fn()`` (a CEL evaluation using ``authorizer``) run in a thread whose checks go to
    ``authorizer`` (None: every check is an error, "no authorizer")."""
    loop = asyncio.get_running_loop()

    def check(user: JSON, request: JSON) -> tuple[bool, str, str]:
        if authorizer is None:
            return False, "", "no authorizer"
        return asyncio.run_coroutine_threadsafe(
            _authorize(authorizer, user, request), loop
        ).result()

    def run() -> T:
        with cel.authorizer_hook(check):
            return fn()

    return await asyncio.to_thread(run)


async def _authorize(authorizer: Any, user: JSON, request: JSON) -> tuple[bool, str, str]:
    who = UserInfo(
        str(user.get("username", "")),
        str(user.get("uid", "")),
        tuple(user.get("groups") or ()),
        {k: tuple(v) for k, v in (user.get("extra") or {}).items()},
    )
    try:
        decision = await authorizer.authorize(who, RequestAttributes(**request))
    except Exception as e:  # an authorizer failing is the decision's error
        return False, "", str(e)
    return decision.allowed, decision.reason, ""
