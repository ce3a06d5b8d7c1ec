"""Tests for the kubelet's on-disk pod volume layout (atomic writer, payloads, PodVolumes)."""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from pyk8s.kubelet.volumes import (
    ClaimError,
    CSIPlugin,
    PodVolumes,
    VolumeError,
    VolumeLookups,
    configmap_payload,
    default_plugins,
    downward_api_payload,
    projected_payload,
    secret_payload,
    staging_path,
    write_payload,
)


def _none(_name: str) -> None:
    return None


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


POD: dict[str, Any] = {
    "metadata": {
        "name": "web",
        "namespace": "ns1",
        "uid": "uid-1",
        "labels": {"b": "2", "a": 'x"y'},
        "annotations": {"note": "hi"},
    },
    "spec": {
        "containers": [
            {
                "name": "app",
                "resources": {
                    "limits": {"cpu": "1500m", "memory": "128Mi"},
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                },
            }
        ]
    },
}
CM: dict[str, Any] = {
    "metadata": {"name": "cfg"},
    "data": {"a.txt": "A", "b.txt": "B"},
    "binaryData": {"bin": b64("\x01")},
}
SECRET: dict[str, Any] = {
    "metadata": {"name": "sec"},
    "data": {"user": b64("admin"), "pass": b64("pw")},
}


# ---------------------------------------------------------------------------- atomic writer


def test_atomic_writer_layout_and_updates(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_payload(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600), "old": (b"x", 0o644)})
    data = target / "..data"
    assert data.is_symlink()
    first_ts = os.readlink(data)
    assert first_ts.startswith("..") and (target / first_ts).is_dir()
    assert os.readlink(target / "a") == "..data/a"
    assert os.readlink(target / "dir") == "..data/dir"
    assert (target / "dir" / "b").read_bytes() == b"2"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o600

    assert write_payload(target, {"a": (b"changed", 0o644), "dir/b": (b"2", 0o600)}) is True
    assert (target / "a").read_text() == "changed"
    assert not (target / "old").exists() and not (target / "old").is_symlink()
    assert not (target / first_ts).exists()
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith("..")) == ["a", "dir"]

    ts = os.readlink(data)
    assert write_payload(target, {"a": (b"changed", 0o644), "dir/b": (b"2", 0o600)}) is False
    assert os.readlink(data) == ts


def test_atomic_writer_rejects_bad_paths(tmp_path: Path) -> None:
    for bad in ("../x", "/abs", "..hidden", "a/../b"):
        with pytest.raises(VolumeError, match="invalid payload path"):
            write_payload(tmp_path / "v", {bad: (b"", 0o644)})


# ---------------------------------------------------------------------------- payloads


def test_configmap_payload_all_keys_and_items() -> None:
    assert configmap_payload({"name": "cfg"}, CM, 0o644) == {
        "a.txt": (b"A", 0o644),
        "b.txt": (b"B", 0o644),
        "bin": (b"\x01", 0o644),
    }
    src = {"name": "cfg", "defaultMode": 0o400, "items": [{"key": "a.txt", "path": "x/a"},
           {"key": "bin", "path": "b", "mode": 0o755}]}  # fmt: skip
    assert configmap_payload(src, CM, 0o644) == {"x/a": (b"A", 0o400), "b": (b"\x01", 0o755)}


def test_configmap_payload_errors_and_optional() -> None:
    with pytest.raises(VolumeError, match=r'^configmap "nope" not found$'):
        configmap_payload({"name": "nope"}, None, 0o644)
    assert configmap_payload({"name": "nope", "optional": True}, None, 0o644) == {}
    with pytest.raises(VolumeError, match="non-existent configmap key: zz"):
        configmap_payload({"name": "cfg", "items": [{"key": "zz", "path": "z"}]}, CM, 0o644)


def test_secret_payload_decodes_base64() -> None:
    assert secret_payload({"secretName": "sec"}, SECRET, 0o644) == {
        "user": (b"admin", 0o644),
        "pass": (b"pw", 0o644),
    }
    src = {"secretName": "sec", "items": [{"key": "pass", "path": "p", "mode": 0o400}]}
    assert secret_payload(src, SECRET, 0o644) == {"p": (b"pw", 0o400)}
    with pytest.raises(VolumeError, match=r'^secret "gone" not found$'):
        secret_payload({"secretName": "gone"}, None, 0o644)


def test_downward_api_payload() -> None:
    items: list[dict[str, Any]] = [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}, "mode": 0o600},
        {"path": "one", "fieldRef": {"fieldPath": "metadata.labels['b']"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}},
        {"path": "mcpu", "resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
        {"path": "mem", "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
    ]
    got = downward_api_payload(items, POD)
    assert got == {
        "name": (b"web", 0o644),
        "ns": (b"ns1", 0o644),
        "uid": (b"uid-1", 0o644),
        "labels": (b'a="x\\"y"\nb="2"', 0o644),
        "annotations": (b'note="hi"', 0o600),
        "one": (b"2", 0o644),
        "cpu": (b"2", 0o644),
        "mcpu": (b"250", 0o644),
        "mem": (b"128", 0o644),
    }
    with pytest.raises(VolumeError, match="unsupported fieldPath"):
        downward_api_payload([{"path": "x", "fieldRef": {"fieldPath": "spec.nope"}}], POD)


def test_projected_payload_merges_sources() -> None:
    seen: list[dict[str, Any]] = []

    def token(req: dict[str, Any]) -> bytes:
        seen.append(req)
        return b"tok"

    sources: list[dict[str, Any]] = [
        {"configMap": {"name": "cfg", "items": [{"key": "a.txt", "path": "a"}]}},
        {"secret": {"name": "sec", "items": [{"key": "user", "path": "u"}]}},
        {"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"serviceAccountToken": {"path": "token", "audience": "api", "expirationSeconds": 3600}},
    ]
    got = projected_payload(
        sources, POD, {"cfg": CM}.get, {"sec": SECRET}.get, token, default_mode=0o440
    )
    assert got == {
        "a": (b"A", 0o440),
        "u": (b"admin", 0o440),
        "n": (b"web", 0o440),
        "token": (b"tok", 0o440),
    }
    assert seen == [{"path": "token", "audience": "api", "expirationSeconds": 3600}]
    with pytest.raises(VolumeError, match='configmap "missing" not found'):
        projected_payload([{"configMap": {"name": "missing"}}], POD, _none, _none, None)


# ---------------------------------------------------------------------------- PodVolumes


def _pod(volumes: list[dict[str, Any]]) -> dict[str, Any]:
    return {**POD, "spec": {**POD["spec"], "volumes": volumes}}


def _mounted(path: Path) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == str(path) and line.split()[0] == "tmpfs" for line in f)


LOOKUPS = VolumeLookups(configmap={"cfg": CM}.get, secret={"sec": SECRET}.get,
                        service_account_token=lambda _req: b"tok")  # fmt: skip


def test_pod_volumes_setup_and_teardown(tmp_path: Path) -> None:
    host_dir = tmp_path / "host" / "made"
    pod = _pod([
        {"name": "scratch", "emptyDir": {}},
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o400}},
        {"name": "sec", "secret": {"secretName": "sec"}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "proj", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}]}},
        {"name": "host", "hostPath": {"path": str(host_dir), "type": "DirectoryOrCreate"}},
    ])  # fmt: skip
    pv = PodVolumes(tmp_path / "kubelet")
    paths = pv.setup(pod, LOOKUPS)
    vols = tmp_path / "kubelet" / "pods" / "uid-1" / "volumes"
    assert paths == {
        "scratch": vols / "kubernetes.io~empty-dir" / "scratch",
        "cfg": vols / "kubernetes.io~configmap" / "cfg",
        "sec": vols / "kubernetes.io~secret" / "sec",
        "info": vols / "kubernetes.io~downward-api" / "info",
        "proj": vols / "kubernetes.io~projected" / "proj",
        "host": host_dir,
    }
    assert paths["scratch"].is_dir() and host_dir.is_dir()
    assert (paths["cfg"] / "a.txt").read_text() == "A"
    assert (paths["cfg"] / "a.txt").stat().st_mode & 0o777 == 0o400
    assert (paths["sec"] / "user").read_text() == "admin"
    assert (paths["info"] / "name").read_text() == "web"
    assert (paths["proj"] / "token").read_text() == "tok"
    assert pv.setup(pod, LOOKUPS) == paths  # idempotent resync

    pv.teardown("uid-1")
    assert not (tmp_path / "kubelet" / "pods" / "uid-1").exists()
    assert not any(_mounted(p) for p in paths.values())
    assert host_dir.is_dir()  # hostPath is never removed


def test_host_path_type_checks(tmp_path: Path) -> None:
    pv = PodVolumes(tmp_path / "kubelet")
    missing = tmp_path / "missing"
    with pytest.raises(VolumeError, match=f"hostPath type check failed: {missing} is not a dir"):
        pv.setup(_pod([{"name": "h", "hostPath": {"path": str(missing), "type": "Directory"}}]),
                 LOOKUPS)  # fmt: skip
    with pytest.raises(VolumeError, match="is not a file"):
        pv.setup(_pod([{"name": "h", "hostPath": {"path": str(tmp_path), "type": "File"}}]),
                 LOOKUPS)  # fmt: skip
    f = tmp_path / "made.txt"
    got = pv.setup(_pod([{"name": "h", "hostPath": {"path": str(f), "type": "FileOrCreate"}}]),
                   LOOKUPS)  # fmt: skip
    assert got == {"h": f} and f.is_file()
    assert pv.setup(_pod([{"name": "h", "hostPath": {"path": str(missing)}}]), LOOKUPS) == {
        "h": missing
    }


def test_missing_configmap_and_unsupported_volume(tmp_path: Path) -> None:
    pv = PodVolumes(tmp_path)
    with pytest.raises(VolumeError, match=r'^configmap "nope" not found$'):
        pv.setup(_pod([{"name": "c", "configMap": {"name": "nope"}}]), LOOKUPS)
    with pytest.raises(VolumeError, match='volume "n": unsupported volume type'):
        pv.setup(_pod([{"name": "n", "nfs": {"server": "s", "path": "/"}}]), LOOKUPS)


@pytest.mark.e2e
def test_tmpfs_volumes_when_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting tmpfs needs root")
    pod = _pod([
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "sec", "secret": {"secretName": "sec"}},
    ])  # fmt: skip
    pv = PodVolumes(tmp_path / "kubelet")
    try:
        paths = pv.setup(pod, LOOKUPS)
        assert _mounted(paths["mem"]) and _mounted(paths["sec"])
        with open("/proc/mounts") as f:
            line = next(x for x in f if x.split()[1] == str(paths["mem"]))
        assert "size=1024k" in line
        assert (paths["sec"] / "pass").read_text() == "pw"
        pv.setup(pod, LOOKUPS)  # a resync must not stack a second mount
        with open("/proc/mounts") as f:
            assert sum(x.split()[1] == str(paths["mem"]) for x in f) == 1
    finally:
        pv.teardown("uid-1")
    assert not _mounted(paths["mem"]) and not _mounted(paths["sec"])
    assert not pv.pod_dir("uid-1").exists()


# ---------------------------------------------------------------------------- claims


def _claim(name: str, volume: str = "", phase: str = "Bound", **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns1", "uid": f"uid-{name}", **meta},
            "spec": {"volumeName": volume}, "status": {"phase": phase}}  # fmt: skip


def _pv(name: str, claim: str, source: dict[str, Any]) -> dict[str, Any]:
    ref = {"name": claim, "namespace": "ns1", "uid": f"uid-{claim}"}
    return {"metadata": {"name": name}, "spec": {"claimRef": ref, **source}}


def _claim_lookups(claims: list[dict[str, Any]], pvs: list[dict[str, Any]]) -> VolumeLookups:
    by_claim = {c["metadata"]["name"]: c for c in claims}
    by_pv = {p["metadata"]["name"]: p for p in pvs}
    return VolumeLookups(configmap=_none, secret=_none, claim=by_claim.get,
                         persistent_volume=by_pv.get)  # fmt: skip


def test_claims_mount_their_bound_volume_through_its_plugin(tmp_path: Path) -> None:
    local_dir = tmp_path / "disk"
    local_dir.mkdir()
    lookups = _claim_lookups(
        [_claim("fast", "pv-local"), _claim("made", "pv-host")],
        [_pv("pv-local", "fast", {"local": {"path": str(local_dir)}}),
         _pv("pv-host", "made", {"hostPath": {"path": str(tmp_path / "created")}})],
    )  # fmt: skip
    read_only = {"claimName": "made", "readOnly": True}
    pod = _pod([{"name": "a", "persistentVolumeClaim": {"claimName": "fast"}},
                {"name": "b", "persistentVolumeClaim": read_only}])  # fmt: skip
    pv = PodVolumes(tmp_path / "kubelet")
    assert pv.setup(pod, lookups) == {"a": local_dir, "b": tmp_path / "created"}
    assert (tmp_path / "created").is_dir()
    assert pv.read_only("uid-1") == {"b"}
    assert {n: m.claim for n, m in pv.mounted["uid-1"].items()} == {"a": "fast", "b": "made"}
    pv.teardown("uid-1")
    assert local_dir.is_dir()  # the data of a claim outlives the pod


@pytest.mark.parametrize(
    ("claims", "pvs", "message"),
    [
        ([], [], 'failed to fetch PVC from API server: persistentvolumeclaims "c" not found'),
        ([_claim("c", "pv", deletionTimestamp="2026-01-01T00:00:00Z")], [],
         "can't start pod because PVC ns1/c is being deleted"),
        ([_claim("c", phase="Pending")], [],
         'PVC ns1/c has non-bound phase ("Pending") or empty pvc.Spec.VolumeName ("")'),
        ([_claim("c", "pv")], [],
         'failed to fetch PV "pv" from API server: persistentvolumes "pv" not found'),
        ([_claim("c", "pv")], [_pv("pv", "other", {"local": {"path": "/"}})],
         'found PV object "pv" but its ClaimRef.UID "uid-other" does not point to the '
         'PVC\'s UID "uid-c"'),
    ],
)  # fmt: skip
def test_claim_errors_are_upstreams(
    tmp_path: Path, claims: list[Any], pvs: list[Any], message: str
) -> None:
    pod = _pod([{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}])
    with pytest.raises(ClaimError) as err:
        PodVolumes(tmp_path).setup(pod, _claim_lookups(claims, pvs))
    assert str(err.value) == f"error processing PVC ns1/c: {message}"
    assert err.value.volume == "data"


def test_local_volume_must_exist_and_csi_needs_a_registered_driver(tmp_path: Path) -> None:
    lookups = _claim_lookups(
        [_claim("c", "pv"), _claim("d", "pv-csi")],
        [_pv("pv", "c", {"local": {"path": str(tmp_path / "nope")}}),
         _pv("pv-csi", "d", {"csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": "h"}})],
    )  # fmt: skip
    pv = PodVolumes(tmp_path / "kubelet")
    with pytest.raises(VolumeError, match=f'^path "{tmp_path}/nope" does not exist$'):
        pv.setup(_pod([{"name": "x", "persistentVolumeClaim": {"claimName": "c"}}]), lookups)
    with pytest.raises(VolumeError, match=r"name hostpath\.csi\.k8s\.io not found in the list"):
        pv.setup(_pod([{"name": "x", "persistentVolumeClaim": {"claimName": "d"}}]), lookups)


def test_csi_plugin_waits_for_attach_then_stages_publishes_and_unstages_last(
    tmp_path: Path,
) -> None:
    calls: list[tuple[Any, ...]] = []

    class Driver:
        stage_unstage, has_stats, can_expand = True, False, False

        def node_stage(self, volume_id: str, staging: Path, capability: Any,
                       context: Any, publish_context: Any) -> None:  # fmt: skip
            calls.append(("stage", volume_id, staging, dict(publish_context)))

        def node_unstage(self, volume_id: str, staging: Path) -> None:
            calls.append(("unstage", volume_id, staging))

        def node_publish(self, volume_id: str, target: Path, read_only: bool, context: Any,
                         **kw: Any) -> None:  # fmt: skip
            calls.append(("publish", volume_id, target, kw["staging"], dict(context)))

        def node_unpublish(self, volume_id: str, target: Path) -> None:
            calls.append(("unpublish", volume_id, target))

    attachments: dict[str, Any] = {}
    lookups = dataclasses.replace(
        _claim_lookups(
            [_claim("d", "pv-csi")],
            [_pv("pv-csi", "d", {"csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": "h1"}})],
        ),
        csi_driver=lambda n: {"spec": {"attachRequired": True, "podInfoOnMount": True}},
        volume_attachment=attachments.get,
    )
    pv = PodVolumes(
        tmp_path / "kubelet", default_plugins(CSIPlugin({"hostpath.csi.k8s.io": Driver()}))
    )
    pod = _pod([{"name": "x", "persistentVolumeClaim": {"claimName": "d"}}])
    with pytest.raises(VolumeError, match=r'WaitForAttach failed for volume "pv-csi" : timed'):
        pv.setup(pod, lookups)
    assert calls == []  # nothing staged before the attacher says attached
    attachments["pv-csi"] = {"status": {"attached": True, "attachmentMetadata": {"k": "v"}}}
    paths = pv.setup(pod, lookups)
    target = pv.volume_dir("uid-1", "kubernetes.io/csi", "x") / "mount"
    staging = staging_path(tmp_path / "kubelet", "hostpath.csi.k8s.io", "h1")
    assert paths == {"x": target}
    assert calls[0] == ("stage", "h1", staging, {"k": "v"})
    assert calls[1][:4] == ("publish", "h1", target, staging)
    assert calls[1][4]["csi.storage.k8s.io/pod.uid"] == "uid-1"
    other = {**pod, "metadata": {**pod["metadata"], "uid": "uid-2"}}
    pv.setup(other, lookups)  # a second pod on the node: staged again (idempotent), published
    PodVolumes(tmp_path / "kubelet", pv.plugins).teardown("uid-1")  # as after a restart
    assert calls[-1] == ("unpublish", "h1", target)  # uid-2 still uses it: not unstaged
    PodVolumes(tmp_path / "kubelet", pv.plugins).teardown("uid-2")
    assert calls[-1] == ("unstage", "h1", staging)
    assert not pv.pod_dir("uid-1").exists() and not staging.parent.exists()


def test_orphaned_pod_directories_are_torn_down(tmp_path: Path) -> None:
    pv = PodVolumes(tmp_path / "kubelet")
    for uid in ("keep", "gone"):
        pod = {**_pod([{"name": "scratch", "emptyDir": {}}]),
               "metadata": {**POD["metadata"], "uid": uid}}  # fmt: skip
        (pv.setup(pod, LOOKUPS)["scratch"] / "f").write_text("x")
    restarted = PodVolumes(tmp_path / "kubelet")  # knows nothing of either pod
    assert restarted.cleanup_orphans({"keep"}) == ["gone"]
    assert restarted.pod_uids_on_disk() == {"keep"}


def test_only_the_directories_read_before_the_pods_can_be_orphans(tmp_path: Path) -> None:
    """The kubelet reads the disk, then the pods it has: a pod whose directory was made
    between the two (it arrived meanwhile) is left alone, not torn down while it runs."""
    pv = PodVolumes(tmp_path / "kubelet")

    def arrive(uid: str) -> None:
        pod = {**_pod([{"name": "scratch", "emptyDir": {}}]),
               "metadata": {**POD["metadata"], "uid": uid}}  # fmt: skip
        pv.setup(pod, LOOKUPS)

    arrive("gone")
    on_disk = pv.pod_uids_on_disk()
    arrive("new")  # after the read; the kubelet's pod set (below) was taken before it came
    assert pv.cleanup_orphans(set(), on_disk) == ["gone"]
    assert pv.pod_uids_on_disk() == {"new"}
