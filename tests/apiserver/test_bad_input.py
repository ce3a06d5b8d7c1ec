"""Input that breaks nothing: typed decoding of every write, the last-resort handler and
the audit ID every response carries, in process.

An :class:`APIServer` over a SQLite store, served by aiohttp's test server (no
authentication: every caller is admitted). The property test mutates valid objects of
every built-in kind into wrong JSON types at random paths and asserts what a client sees:
a 4xx Status, never a 5xx, and nothing written.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api.validation import decode_error
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.storage.sqlite import SqliteStore
from tests.apiserver.catalogue import CATALOGUE

JSON = dict[str, Any]
NS = "default"


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


class Cluster:
    """An in-process API server and a client of it, on an event loop of its own (the
    property test calls it from hypothesis's synchronous examples)."""

    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.tmp_path = tmp_path
        self.loop.run_until_complete(self._start())

    async def _start(self) -> None:
        self.store = await SqliteStore.open(self.tmp_path / "state.db")
        self.server = APIServer(self.store, config=Config(compact_interval=0))
        await self.server.start()
        self.client: TestClient[Any, Any] = TestClient(TestServer(self.server.app))
        await self.client.start_server()

    async def _stop(self) -> None:
        await self.client.close()
        await self.server.stop()
        await self.store.close()

    def close(self) -> None:
        self.loop.run_until_complete(self._stop())
        self.loop.close()

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        async def go() -> Answer:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            resp = await self.client.request(
                method, path, data=data, headers={"Content-Type": content_type, **(headers or {})}
            )
            return Answer(resp.status, await resp.read(), dict(resp.headers))

        return self.loop.run_until_complete(go())

    def revision(self, url: str) -> int:
        """The last write to the resource of a collection or object URL (any namespace):
        whether a request wrote it, whatever background loops (the aggregator's
        APIService status) write elsewhere meanwhile."""
        parts = url.split("?", 1)[0].strip("/").split("/")
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2], parts[3:]
        if rest[0] == "namespaces" and len(rest) > 2:
            rest = rest[2:]
        r = self.server.registry.get(group, version, rest[0])
        assert r is not None, url

        async def last() -> int:
            page = await self.store.list(r.key_prefix())
            return max((kv.mod_revision for kv in page.kvs), default=0)

        return self.loop.run_until_complete(last())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("bad-input"))
    try:
        yield c
    finally:
        c.close()


# --------------------------------------------------------------------------- last resort


def test_an_unexpected_error_is_an_internal_error_without_python_internals(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AttributeError("'str' object has no attribute 'get'")

    monkeypatch.setattr(cluster.server.handlers, "lookup", broken)
    with caplog.at_level(logging.ERROR, logger="pyk8s.apiserver.server"):
        got = cluster("DELETE", f"/api/v1/namespaces/{NS}/configmaps/anything")
    assert got.status == 500
    assert got.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Internal error occurred: an unexpected error occurred while serving "
        "the request",
        "reason": "InternalError",
        "code": 500,
    }
    assert b"AttributeError" not in got.body and b"Traceback" not in got.body
    audit_id = got.headers["Audit-Id"]
    logged = [r for r in caplog.records if audit_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert logged[0].exc_info[0] is AttributeError


def test_every_response_carries_an_audit_id(cluster: Cluster) -> None:
    ok = cluster("GET", f"/api/v1/namespaces/{NS}")
    missing = cluster("GET", "/api/v1/namespaces/nope")
    assert ok.status == 200 and missing.status == 404
    assert ok.headers["Audit-Id"] != missing.headers["Audit-Id"]
    assert len(ok.headers["Audit-Id"]) == 36  # a UUID, as upstream's
    mine = cluster("GET", "/version", headers={"Audit-ID": "my-request-1"})
    assert mine.headers["Audit-Id"] == "my-request-1"


# --------------------------------------------------------------------------- typed decoding


def _pod(name: str, **spec: Any) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def test_the_issues_examples_are_400_in_upstreams_words(cluster: Cluster) -> None:
    pods = f"/api/v1/namespaces/{NS}/pods"
    before = cluster.revision(pods)
    got = cluster("POST", pods, {**_pod("a"), "spec": {"containers": "abc"}})
    assert got.status == 400
    assert got.json()["reason"] == "BadRequest"
    assert got.json()["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into '
        "Go struct field PodSpec.spec.containers of type []v1.Container"
    )
    labels_true = _pod("b")
    labels_true["metadata"]["labels"] = True
    got = cluster("POST", pods, labels_true)
    assert got.status == 400
    assert got.json()["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal bool into '
        "Go struct field ObjectMeta.metadata.labels of type map[string]string"
    )
    assert cluster.revision(pods) == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"metadata": "abc"}, "application/json"),
        ({"metadata": {"name": ["x"]}}, "application/json"),
        ({"metadata": {"name": "n", "annotations": {"a": {"b": 1}}}}, "application/json"),
        ({"spec": {"containers": [{"name": "c", "image": "i", "ports": "80"}]}}, None),
        ({"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"hostIP": {}}]}]}}, None),
        ({"spec": {"containers": [[[[]]]]}}, None),
        ({"spec": {"containers": [{"name": "c", "image": "i", "resources": []}]}}, None),
        ({"spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": 5}]}]}}, None),
        ({"spec": {"terminationGracePeriodSeconds": "30"}}, None),
        ({"spec": {"priority": 2**31}}, None),
        ({"spec": {"hostNetwork": "true"}}, None),
        ({"kind": 5}, None),
        ({"apiVersion": ["v1"]}, None),
        ([1, 2, 3], None),
        ("a string", None),
        (b"null", None),
        (b"\x00\x01garbage", None),
        (b"metadata: [1]\n", "application/yaml"),
        (b"- not\n- a\n- map\n", "application/yaml"),
        (b"kind: [", "application/yaml"),
        (b'{"kind": "Pod"}', "application/vnd.kubernetes.protobuf"),
    ],
)
def test_malformed_pods_are_400_and_write_nothing(
    cluster: Cluster, body: Any, content_type: str | None
) -> None:
    if isinstance(body, dict):
        pod = _pod("malformed")
        for key, value in body.items():
            pod[key] = {**pod[key], **value} if isinstance(value, dict) else value
        body = pod
    pods = f"/api/v1/namespaces/{NS}/pods"
    before = cluster.revision(pods)
    got = cluster("POST", pods, body, content_type or "application/json")
    assert got.status == 400, got.body
    assert got.json()["reason"] == "BadRequest"
    assert cluster.revision(pods) == before


def test_a_wrong_type_in_a_patch_is_422_on_the_patch(cluster: Cluster) -> None:
    assert cluster("POST", f"/api/v1/namespaces/{NS}/pods", _pod("patched")).status == 201
    before = cluster.revision(f"/api/v1/namespaces/{NS}/pods")
    got = cluster(
        "PATCH",
        f"/api/v1/namespaces/{NS}/pods/patched",
        {"spec": {"containers": "abc"}},
        "application/merge-patch+json",
    )
    assert got.status == 422
    status = got.json()
    assert status["reason"] == "Invalid"
    assert status["message"].startswith(' "" is invalid: patch: Invalid value: "{')
    assert status["message"].endswith(
        "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of "
        "type []v1.Container"
    )
    assert [c["field"] for c in status["details"]["causes"]] == ["patch"]
    assert cluster.revision(f"/api/v1/namespaces/{NS}/pods") == before


def test_subresource_bodies_are_typed(cluster: Cluster) -> None:
    assert cluster("POST", f"/api/v1/namespaces/{NS}/pods", _pod("bound")).status == 201
    pod = f"/api/v1/namespaces/{NS}/pods/bound"
    before = cluster.revision(pod)
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"}}
    got = cluster("POST", pod + "/binding", {**binding, "target": "node-1"})
    assert got.status == 400
    assert got.json()["message"] == (
        'Binding in version "v1" cannot be handled as a Binding: json: cannot unmarshal '
        "string into Go struct field Binding.target of type v1.ObjectReference"
    )
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "bound"}}
    got = cluster("POST", pod + "/eviction", {**eviction, "deleteOptions": []})
    assert got.status == 400
    assert got.json()["message"] == (
        'Eviction in version "v1" cannot be handled as a Eviction: json: cannot unmarshal '
        "array into Go struct field Eviction.deleteOptions of type v1.DeleteOptions"
    )
    status = cluster("GET", pod).json()
    status["status"] = {"phase": 1}
    got = cluster("PUT", pod + "/status", status)
    assert got.status == 400
    assert got.json()["message"].endswith(
        "json: cannot unmarshal number into Go struct field PodStatus.status.phase of type string"
    )
    assert cluster.revision(pod) == before


def test_scale_bodies_are_typed(cluster: Cluster) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "scaled"},
        "spec": {
            "selector": {"matchLabels": {"app": "scaled"}},
            "template": {
                "metadata": {"labels": {"app": "scaled"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    path = f"/apis/apps/v1/namespaces/{NS}/deployments"
    assert cluster("POST", path, deployment).status == 201
    before = cluster.revision(path)
    scale = f"{path}/scaled/scale"
    got = cluster("PUT", scale, {"kind": "Scale", "apiVersion": "autoscaling/v1", "spec": []})
    assert got.status == 400
    assert got.json()["message"] == (
        'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal array '
        "into Go struct field Scale.spec of type v1.ScaleSpec"
    )
    got = cluster("PATCH", scale, {"spec": {"replicas": "3"}}, "application/merge-patch+json")
    assert got.status == 422
    assert got.json()["details"]["causes"][0]["field"] == "patch"
    assert cluster.revision(path) == before


# --------------------------------------------------------------------------- property test

#: one value of each JSON type, for a field that has another
WRONG: list[Any] = ["abc", "", ["x"], [], {"x": 1}, {}, 7, -1, 1.5, 2**40, True, False, None]


def _json_type(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value) if value is None else "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path in a JSON value (map keys and list indices), the root excluded."""
    out = [path] if path else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _set(obj: Any, path: tuple[str | int, ...], value: Any) -> None:
    for step in path[:-1]:
        obj = obj[step]
    obj[path[-1]] = value


def _get(obj: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        obj = obj[step]
    return obj


#: the namespace of the property tests' objects: a mutant that is accepted (a LimitRange
#: whose max is now the number -1) must not change what the other tests can write
FUZZ_NS = "fuzz"


def _body(index: int, name: str) -> tuple[str, JSON]:
    path, body = CATALOGUE[index]
    obj = json.loads(json.dumps(body).replace("{ns}", FUZZ_NS))
    obj.setdefault("metadata", {})["name"] = name
    return path.format(ns=FUZZ_NS), obj


@pytest.fixture(scope="module")
def fuzz_ns(cluster: Cluster) -> str:
    got = cluster("POST", "/api/v1/namespaces", {"metadata": {"name": FUZZ_NS}})
    assert got.status == 201, got.body
    return FUZZ_NS


def _mutations() -> st.SearchStrategy[tuple[int, tuple[str | int, ...], Any]]:
    """(catalogue index, a path in that object, a value of another JSON type)."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[int, tuple[str | int, ...], Any]:
        index = draw(st.integers(0, len(CATALOGUE) - 1))
        _, obj = _body(index, "x")
        path = draw(st.sampled_from(_paths(obj)))
        current = _json_type(_get(obj, path))
        value = draw(st.sampled_from([w for w in WRONG if _json_type(w) != current]))
        return index, path, value

    return build()


_names = iter(range(10**9))


def _expect_refused_or_well_typed(
    cluster: Cluster, got: Answer, obj: JSON, index: int, url: str, before: int
) -> None:
    """Never a 5xx; a 4xx wrote nothing; an accepted body is one upstream decodes too
    (as the catalogue entry's kind: a null apiVersion or kind is the URL's)."""
    assert got.status < 500, got.body
    if got.status >= 400:
        assert got.json()["kind"] == "Status"
        assert cluster.revision(url) == before, got.body
        return
    base = CATALOGUE[index][1]
    group, _, version = base["apiVersion"].rpartition("/")
    assert decode_error(group, version, base["kind"], obj) is None, obj


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_mutations())
def test_a_wrong_type_anywhere_in_a_create_is_refused_and_writes_nothing(
    cluster: Cluster, fuzz_ns: str, mutation: tuple[int, tuple[str | int, ...], Any]
) -> None:
    index, path, value = mutation
    url, obj = _body(index, f"fuzz-{next(_names)}")
    _set(obj, path, copy.deepcopy(value))
    before = cluster.revision(url)
    got = cluster("POST", url, obj)
    _expect_refused_or_well_typed(cluster, got, obj, index, url, before)
    if got.status < 300:  # a mutant upstream accepts too: gone again, for the next one
        assert cluster("DELETE", f"{url}/{got.json()['metadata']['name']}").status == 200


@pytest.fixture(scope="module")
def stored(cluster: Cluster, fuzz_ns: str) -> list[str]:
    """One stored object of every kind in the catalogue: its URL."""
    urls = []
    for index in range(len(CATALOGUE)):
        url, obj = _body(index, f"stored-{index}")
        got = cluster("POST", url, obj)
        assert got.status == 201, got.body
        urls.append(f"{url}/stored-{index}")
    return urls


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_mutations(), st.sampled_from(["PUT", "PATCH"]))
def test_a_wrong_type_anywhere_in_an_update_is_refused_and_writes_nothing(
    cluster: Cluster,
    stored: list[str],
    mutation: tuple[int, tuple[str | int, ...], Any],
    verb: str,
) -> None:
    index, path, value = mutation
    url = stored[index]
    original = cluster("GET", url).json()
    if not _reachable(original, path):
        return  # the stored object has no such place (a field that defaulting dropped)
    current = copy.deepcopy(original)
    _set(current, path, copy.deepcopy(value))
    before = cluster.revision(url)
    if verb == "PUT":
        got = cluster("PUT", url, current)
    else:
        patch: Any = copy.deepcopy(value)
        for step in reversed(path):
            if isinstance(step, int):  # a list is replaced whole by a merge patch
                patch = None
                break
            patch = {step: patch}
        if patch is None:
            patch = {path[0]: _get(current, path[:1])}
        got = cluster("PATCH", url, patch, "application/merge-patch+json")
    _expect_refused_or_well_typed(cluster, got, current, index, url, before)
    if got.status < 300:  # a mutant upstream accepts too: put the original back
        original["metadata"]["resourceVersion"] = got.json()["metadata"]["resourceVersion"]
        assert cluster("PUT", url, original).status == 200


def _has(obj: Any, step: str | int) -> bool:
    if isinstance(obj, dict):
        return isinstance(step, str) and step in obj
    return isinstance(obj, list) and isinstance(step, int) and step < len(obj)


def _reachable(obj: Any, path: tuple[str | int, ...]) -> bool:
    """Whether every step of ``path`` but the last exists in ``obj``, and the last one
    names a key of a map or an index of a list there."""
    *parents, last = path
    for step in parents:
        if not _has(obj, step):
            return False
        obj = obj[step]
    return (isinstance(obj, dict) and isinstance(last, str)) or _has(obj, last)


def test_delete_options_are_typed(cluster: Cluster) -> None:
    url = f"/api/v1/namespaces/{NS}/configmaps"
    assert cluster("POST", url, {"metadata": {"name": "kept"}}).status == 201
    got = cluster("DELETE", f"{url}/kept", {"preconditions": "x"})
    assert got.status == 400
    assert got.json()["message"] == (
        'DeleteOptions in version "v1" cannot be handled as a DeleteOptions: json: cannot '
        "unmarshal string into Go struct field DeleteOptions.preconditions of type "
        "v1.Preconditions"
    )
    assert cluster("GET", f"{url}/kept").status == 200
