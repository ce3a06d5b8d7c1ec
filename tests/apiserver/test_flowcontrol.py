"""API Priority and Fairness, in process: the bootstrap objects, classification and its
response headers, queueing with shuffle sharding, 429 with Retry-After, the Dangling
condition and the tables kubectl prints.

One :class:`APIServer` over SQLite with ``--max-requests-inflight 1
--max-mutating-requests-inflight 1`` (a server concurrency limit of 2), token users
``admin`` (``system:masters``), ``alice`` and ``bob``. A request is held in flight by
withholding its body: it has been admitted (or queued) and waits to read it, so a full
level is a state the test makes. Every wait is for the state the server reports.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from pyk8s.api import flowcontrol as apf
from pyk8s.apiserver.authn import AuthenticatorChain, TokenFileAuthenticator, UserInfo
from pyk8s.apiserver.flowcontrol import PriorityAndFairness, _Dropped
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore

JSON = dict[str, Any]
FC = "/apis/flowcontrol.apiserver.k8s.io/v1"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
TOKENS = {
    "admin": UserInfo("admin", uid="u-1", groups=("system:masters", "system:authenticated")),
    "alice": UserInfo("alice", uid="u-2", groups=("system:authenticated",)),
    "bob": UserInfo("bob", uid="u-3", groups=("system:authenticated",)),
}


class Cluster:
    def __init__(self, client: TestClient[Any, Any], server: APIServer) -> None:
        self.client = client
        self.server = server

    async def call(
        self, method: str, path: str, body: Any = None, user: str = "admin", **headers: str
    ) -> tuple[int, Any, ClientResponse]:
        resp = await self.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {user}", **headers}
        )
        text = await resp.text()
        try:
            out = json.loads(text) if text else None
        except ValueError:
            out = text
        return resp.status, out, resp

    async def until(self, check: Callable[[], Any]) -> Any:
        """The first truthy value of ``check`` (the state the server reports)."""
        for _ in range(500):
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.02)
        raise AssertionError("the server never reached the state")

    def held(self, path: str, body: JSON, user: str) -> tuple[asyncio.Task[int], asyncio.Event]:
        """A POST whose headers go out now and whose body waits for the returned event
        (on a raw connection: aiohttp's client holds headers back until the first chunk);
        the task ends with the response's status code."""
        go = asyncio.Event()
        data = json.dumps(body).encode()

        async def send() -> int:
            reader, writer = await asyncio.open_connection(
                self.client.server.host, self.client.server.port
            )
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {user}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
            await go.wait()
            writer.write(data)
            status = int((await reader.readline()).split()[1])
            await reader.read()
            writer.close()
            return status

        return asyncio.create_task(send()), go


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    store = await SqliteStore.open(tmp_path / "state.db")
    server = APIServer(
        store,
        authenticator=AuthenticatorChain([TokenFileAuthenticator.from_tokens(TOKENS)]),
        config=Config(
            compact_interval=0, max_requests_inflight=1, max_mutating_requests_inflight=1
        ),
    )
    await server.start()
    client = TestClient(TestServer(server.app))
    await client.start_server()
    try:
        yield Cluster(client, server)
    finally:
        await client.close()
        await server.stop()
        await store.close()


def _cm(name: str) -> JSON:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def _items(c: Cluster, plural: str) -> dict[str, JSON]:
    code, out, _ = await c.call("GET", f"{FC}/{plural}")
    assert code == 200, out
    return {o["metadata"]["name"]: o for o in out["items"]}


async def test_bootstrap_objects_headers_dangling_and_tables(cluster: Cluster) -> None:
    c = cluster
    levels = await _items(c, "prioritylevelconfigurations")
    assert sorted(levels) == sorted(
        ["exempt", "catch-all", "system", "node-high", "leader-election", "workload-high",
         "workload-low", "global-default"]
    )  # fmt: skip
    schemas = await _items(c, "flowschemas")
    assert len(schemas) == 13 and schemas["probes"]["spec"]["matchingPrecedence"] == 2
    assert schemas["exempt"]["metadata"]["annotations"] == {apf.AUTO_UPDATE_ANNOTATION: "true"}

    # every response names its flow schema and level by UID
    _, _, resp = await c.call("GET", "/api/v1/namespaces/default/configmaps", user="alice")
    assert (
        resp.headers["X-Kubernetes-PF-FlowSchema-UID"]
        == schemas["global-default"]["metadata"]["uid"]
    )
    assert (
        resp.headers["X-Kubernetes-PF-PriorityLevel-UID"]
        == levels["global-default"]["metadata"]["uid"]
    )
    _, _, resp = await c.call("GET", "/api/v1/namespaces/default/configmaps")
    assert resp.headers["X-Kubernetes-PF-FlowSchema-UID"] == schemas["exempt"]["metadata"]["uid"]
    _, _, resp = await c.call("GET", "/readyz", user="alice")
    assert resp.headers["X-Kubernetes-PF-FlowSchema-UID"] == schemas["probes"]["metadata"]["uid"]

    # a schema whose level is missing is Dangling, and printed MISSINGPL True
    orphan = {
        "apiVersion": apf.API_VERSION,
        "kind": "FlowSchema",
        "metadata": {"name": "orphan"},
        "spec": {
            "priorityLevelConfiguration": {"name": "nowhere"},
            "rules": [
                {
                    "subjects": [{"kind": "User", "user": {"name": "bob"}}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }
    code, out, _ = await c.call("POST", f"{FC}/flowschemas", orphan)
    assert code == 201, out
    assert out["spec"]["matchingPrecedence"] == 1000  # v1's default

    async def conditions() -> dict[str, str]:
        found = await _items(c, "flowschemas")
        return {
            name: cond["status"]
            for name, fs in found.items()
            for cond in (fs.get("status") or {}).get("conditions") or []
            if cond["type"] == "Dangling"
        }

    dangling = await c.until(lambda: _all_known(conditions, 14))
    assert dangling["orphan"] == "True" and dangling["global-default"] == "False"

    code, table, _ = await c.call("GET", f"{FC}/flowschemas", Accept=TABLE)
    assert [col["name"] for col in table["columnDefinitions"]] == [
        "Name", "PriorityLevel", "MatchingPrecedence", "DistinguisherMethod", "Age", "MissingPL"
    ]  # fmt: skip
    rows = {r["cells"][0]: r["cells"] for r in table["rows"]}
    assert rows["exempt"][1:4] == ["exempt", 1, "<none>"]
    assert rows["global-default"][1:4] == ["global-default", 9900, "ByUser"]
    assert rows["orphan"][5] == "True" and rows["catch-all"][5] == "False"
    code, table, _ = await c.call("GET", f"{FC}/prioritylevelconfigurations", Accept=TABLE)
    assert [col["name"] for col in table["columnDefinitions"]] == [
        "Name", "Type", "NominalConcurrencyShares", "Queues", "HandSize", "QueueLengthLimit",
        "Age",
    ]  # fmt: skip
    rows = {r["cells"][0]: r["cells"] for r in table["rows"]}
    assert rows["exempt"][1:6] == ["Exempt", "<none>", "<none>", "<none>", "<none>"]
    assert rows["catch-all"][1:6] == ["Limited", 5, "<none>", "<none>", "<none>"]
    assert rows["workload-low"][1:6] == ["Limited", 100, 128, 6, 50]

    # a deleted mandatory object comes back
    old_uid = schemas["catch-all"]["metadata"]["uid"]
    code, _, _ = await c.call("DELETE", f"{FC}/flowschemas/catch-all")
    assert code == 200

    async def recreated() -> bool:
        code, fs, _ = await c.call("GET", f"{FC}/flowschemas/catch-all")
        return code == 200 and fs["metadata"]["uid"] != old_uid

    await c.until(recreated)


async def _all_known(conditions: Callable[[], Any], count: int) -> dict[str, str] | None:
    found: dict[str, str] = await conditions()
    return found if len(found) == count else None


async def test_a_full_level_queues_by_shuffle_sharding_then_answers_429(cluster: Cluster) -> None:
    c = cluster
    level = {
        "apiVersion": apf.API_VERSION,
        "kind": "PriorityLevelConfiguration",
        "metadata": {"name": "tiny"},
        "spec": {
            "type": "Limited",
            "limited": {
                "nominalConcurrencyShares": 1,
                "limitResponse": {
                    "type": "Queue",
                    "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 1},
                },
            },
        },
    }
    code, out, _ = await c.call("POST", f"{FC}/prioritylevelconfigurations", level)
    assert code == 201, out
    assert out["spec"]["limited"]["lendablePercent"] == 0
    schema = {
        "apiVersion": apf.API_VERSION,
        "kind": "FlowSchema",
        "metadata": {"name": "alice"},
        "spec": {
            "priorityLevelConfiguration": {"name": "tiny"},
            "matchingPrecedence": 50,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [{"kind": "User", "user": {"name": "alice"}}],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": ["*"],
                            "resources": ["*"],
                            "namespaces": ["*"],
                            "clusterScope": True,
                        }
                    ],
                }
            ],
        },
    }
    code, out, _ = await c.call("POST", f"{FC}/flowschemas", schema)
    assert code == 201, out
    apf_ = c.server.apf
    assert apf_ is not None
    tiny = await c.until(lambda: apf_.levels.get("tiny"))
    await c.until(lambda: apf_._schemas[2]["metadata"]["name"] == "alice")
    assert tiny.limit == 1  # ceil(2 * 1 / 246)

    path = "/api/v1/namespaces/default/configmaps"
    first, go_first = c.held(path, _cm("first"), "alice")
    await c.until(lambda: tiny.executing == 1)
    second, go_second = c.held(path, _cm("second"), "alice")
    await c.until(lambda: tiny.waiting == 1)

    # the one queue is full: 429 at once, as upstream's plain text, with the headers
    code, body, resp = await c.call("POST", path, _cm("third"), user="alice")
    assert code == 429 and body == "Too many requests, please try again later.\n"
    assert resp.headers["Retry-After"] == "1"
    assert resp.headers["X-Kubernetes-PF-PriorityLevel-UID"] == tiny.uid
    # other users' levels are untouched
    code, _, _ = await c.call("POST", path, _cm("by-bob"), user="bob")
    assert code == 201

    go_second.set()  # its body is ready, but it waits for a seat
    go_first.set()
    assert await first == 201
    assert await second == 201
    assert tiny.executing == 0 and tiny.waiting == 0

    # a queued request that waits too long is rejected as timed out
    apf_.wait_limit = 0.05
    held, go = c.held(path, _cm("held"), "alice")
    await c.until(lambda: tiny.executing == 1)
    code, _, _ = await c.call("POST", path, _cm("late"), user="alice")
    assert code == 429
    go.set()
    assert await held == 201

    code, metrics, _ = await c.call("GET", "/metrics")
    for line in (
        'apiserver_flowcontrol_rejected_requests_total{flow_schema="alice",'
        'priority_level="tiny",reason="queue-full"} 1.0',
        'apiserver_flowcontrol_rejected_requests_total{flow_schema="alice",'
        'priority_level="tiny",reason="time-out"} 1.0',
        'apiserver_flowcontrol_dispatched_requests_total{flow_schema="alice",'
        'priority_level="tiny"} 3.0',
        'apiserver_flowcontrol_nominal_limit_seats{priority_level="tiny"} 1.0',
        'apiserver_flowcontrol_current_inqueue_requests{flow_schema="alice",'
        'priority_level="tiny"} 0.0',
    ):
        assert line in metrics, line
    assert 'code="429"' in metrics  # apiserver_request_terminations_total


async def test_a_reject_level_answers_429_when_its_seats_are_taken(cluster: Cluster) -> None:
    c = cluster
    level = {
        "apiVersion": apf.API_VERSION,
        "kind": "PriorityLevelConfiguration",
        "metadata": {"name": "strict"},
        "spec": {
            "type": "Limited",
            "limited": {"nominalConcurrencyShares": 1, "limitResponse": {"type": "Reject"}},
        },
    }
    code, out, _ = await c.call("POST", f"{FC}/prioritylevelconfigurations", level)
    assert code == 201, out
    bad = json.loads(json.dumps(level))
    bad["metadata"]["name"] = "bad"
    bad["spec"]["limited"]["limitResponse"] = {
        "type": "Queue",
        "queuing": {"queues": 2, "handSize": 3},
    }
    code, out, _ = await c.call("POST", f"{FC}/prioritylevelconfigurations", bad)
    assert code == 422
    assert "should not be greater than queues (2)" in out["message"]
    other_exempt = {**bad, "metadata": {"name": "other"}, "spec": {"type": "Exempt"}}
    code, out, _ = await c.call("POST", f"{FC}/prioritylevelconfigurations", other_exempt)
    assert code == 422 and "if and only if `name` is 'exempt'" in out["message"]
    schema = {
        "apiVersion": apf.API_VERSION,
        "kind": "FlowSchema",
        "metadata": {"name": "bob"},
        "spec": {
            "priorityLevelConfiguration": {"name": "strict"},
            "matchingPrecedence": 60,
            "rules": [
                {
                    "subjects": [{"kind": "Group", "group": {"name": "system:authenticated"}}],
                    "resourceRules": [
                        {
                            "verbs": ["create"],
                            "apiGroups": [""],
                            "resources": ["configmaps"],
                            "namespaces": ["*"],
                        }
                    ],
                }
            ],
        },
    }
    code, out, _ = await c.call("POST", f"{FC}/flowschemas", schema)
    assert code == 201, out
    apf_ = c.server.apf
    assert apf_ is not None
    strict = await c.until(lambda: apf_.levels.get("strict"))
    await c.until(lambda: any(fs["metadata"]["name"] == "bob" for fs in apf_._schemas))
    path = "/api/v1/namespaces/default/configmaps"
    held, go = c.held(path, _cm("held"), "bob")
    await c.until(lambda: strict.executing == 1)
    code, _, resp = await c.call("POST", path, _cm("next"), user="alice")
    assert code == 429 and resp.headers["Retry-After"] == "1"
    # reads do not match the schema: served
    code, _, _ = await c.call("GET", path, user="alice")
    assert code == 200
    go.set()
    assert await held == 201
    code, metrics, _ = await c.call("GET", "/metrics")
    assert (
        'apiserver_flowcontrol_rejected_requests_total{flow_schema="bob",'
        'priority_level="strict",reason="concurrency-limit"} 1.0'
    ) in metrics
    # the rejected create counts as a request, but only the served one has a latency (as
    # upstream), in upstream's buckets
    create = 'group="",resource="configmaps",subresource="",verb="create"'
    assert f'apiserver_request_total{{code="429",{create}}} 1.0' in metrics
    assert f'apiserver_request_total{{code="201",{create}}} 1.0' in metrics
    created = 'group="",resource="configmaps",verb="create"'
    assert f"apiserver_request_duration_seconds_count{{{created}}} 1.0" in metrics
    bucket = 'group="",le="0.2",resource="configmaps",verb="create"'
    assert f"apiserver_request_duration_seconds_bucket{{{bucket}}} " in metrics


# --------------------------------------------------------------------------- pure rules


def test_shares_split_the_server_limit_as_upstream() -> None:
    levels = [*apf.MANDATORY_PRIORITY_LEVELS, *apf.SUGGESTED_PRIORITY_LEVELS]
    limits = apf.nominal_limits(600, levels)
    # sum of shares 245: ceil(600 * shares / 245)
    assert limits == {
        "exempt": 0, "catch-all": 13, "system": 74, "node-high": 98, "leader-election": 25,
        "workload-high": 98, "workload-low": 245, "global-default": 49,
    }  # fmt: skip


def test_shuffle_sharding_deals_distinct_stable_hands() -> None:
    hands = {
        user: apf.deal(apf.flow_hash("global-default", user), 128, 6)
        for user in ("alice", "bob", "carol")
    }
    for hand in hands.values():
        assert len(set(hand)) == 6 and all(0 <= q < 128 for q in hand)
    assert hands["alice"] == apf.deal(apf.flow_hash("global-default", "alice"), 128, 6)
    assert hands["alice"] != hands["bob"]
    assert sorted(apf.deal(2**64 - 1, 4, 4)) == [0, 1, 2, 3]


def test_classification_follows_precedence_and_subjects() -> None:
    from prometheus_client import CollectorRegistry

    from pyk8s.api.registry import REGISTRY
    from pyk8s.apiserver.requestinfo import parse_request

    p = PriorityAndFairness(CollectorRegistry(), 600)

    def classify(user: UserInfo, method: str, path: str) -> tuple[str, str]:
        c = p.classify(parse_request(method, path, {}, REGISTRY), user)
        return c.flow_schema, c.priority_level

    node = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
    assert classify(node, "PUT", "/api/v1/nodes/n1/status") == ("system-node-high", "node-high")
    assert classify(node, "GET", "/api/v1/pods") == ("system-nodes", "system")
    kcm = UserInfo("system:kube-controller-manager", groups=("system:authenticated",))
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kcm"
    assert classify(kcm, "PUT", lease) == ("system-leader-election", "leader-election")
    assert classify(kcm, "GET", "/api/v1/pods") == ("kube-controller-manager", "workload-high")
    sa = UserInfo(
        "system:serviceaccount:kube-system:coredns",
        groups=("system:serviceaccounts", "system:serviceaccounts:kube-system"),
    )
    assert classify(sa, "GET", "/api/v1/services") == (
        "kube-system-service-accounts",
        "workload-high",
    )
    app = UserInfo("system:serviceaccount:apps:web", groups=("system:serviceaccounts",))
    assert classify(app, "GET", "/api/v1/services") == ("service-accounts", "workload-low")
    anon = UserInfo("system:anonymous", groups=("system:unauthenticated",))
    assert classify(anon, "GET", "/readyz") == ("probes", "exempt")
    assert classify(anon, "GET", "/version") == ("global-default", "global-default")
    admin = UserInfo("admin", groups=("system:masters",))
    assert classify(admin, "DELETE", "/api/v1/namespaces/a/pods/p") == ("exempt", "exempt")


def test_retry_after_doubles_while_a_level_keeps_dropping_then_shrinks() -> None:
    d = _Dropped()
    for second in range(100, 103):
        for _ in range(5):
            d.record(second)
    assert d.retry_after == 2  # >= 3 drops in the last second
    for second in range(103, 106):
        for _ in range(10):
            d.record(second)
    assert d.retry_after == 4
    d.record(200)  # a quiet spell: one second less per second
    assert d.retry_after == 3
    d.record(201)
    assert d.retry_after == 2


async def test_seats_taken_at_arrival_count_against_the_level() -> None:
    """A request seated when it was read (as its connection's last one was classified,
    pyk8s.apiserver.arrival) holds its level's seat while it waits for the event loop, so
    a request of that level classified meanwhile queues until one is given back."""
    from prometheus_client import CollectorRegistry

    from pyk8s.api.registry import REGISTRY
    from pyk8s.apiserver.requestinfo import parse_request

    p = PriorityAndFairness(CollectorRegistry(), 600)
    c = p.classify(parse_request("GET", "/api/v1/pods", {}, REGISTRY), TOKENS["alice"])
    limit = p.levels[c.priority_level].limit
    seated = [seat for _ in range(limit) if (seat := p.seat_at_arrival(c)) is not None]
    assert len(seated) == limit
    assert p.seat_at_arrival(c) is None  # full: the next one is decided once classified

    level = p.levels[c.priority_level]
    late = asyncio.ensure_future(p.admit(c))
    for _ in range(100):  # a few loop steps, until the level has decided
        if late.done() or level.waiting:
            break
        await asyncio.sleep(0)
    assert not late.done() and level.waiting == 1  # queued behind the seats taken at arrival
    seated[0].release()
    seat = await late
    assert seat is not None
    seat.release()
    for other in seated[1:]:
        other.release()
    exempt = p.classify(parse_request("GET", "/api/v1/pods", {}, REGISTRY), TOKENS["admin"])
    assert p.seat_at_arrival(exempt) is None  # exempt levels need no seat


async def test_a_seat_given_back_wakes_the_next_queued_request_in_one_loop_step() -> None:
    """Under a flood every pass of the event loop runs hundreds of ready callbacks, so a
    queued request's seat should be its own after the step that frees it, not several
    passes later: the woken request runs before work that was already ready."""
    from prometheus_client import CollectorRegistry

    from pyk8s.api.registry import REGISTRY
    from pyk8s.apiserver.requestinfo import parse_request

    p = PriorityAndFairness(CollectorRegistry(), 600)
    c = p.classify(parse_request("GET", "/api/v1/pods", {}, REGISTRY), TOKENS["alice"])
    level = p.levels[c.priority_level]
    held = [seat for _ in range(level.limit) if (seat := p.seat_at_arrival(c)) is not None]
    ran: list[str] = []

    async def queued() -> Any:
        seat = await p.admit(c)
        ran.append("woken")
        return seat

    late = asyncio.ensure_future(queued())
    for _ in range(100):  # a few loop steps, until it has queued
        if level.waiting:
            break
        await asyncio.sleep(0)
    assert level.waiting == 1

    loop = asyncio.get_running_loop()
    loop.call_soon(held[0].release)
    for i in range(20):  # other work already ready when the seat is freed
        loop.call_soon(ran.append, f"ready {i}")
    seat = await late
    assert seat is not None
    assert ran.index("woken") < ran.index("ready 0")
    seat.release()
    for other in held[1:]:
        other.release()
