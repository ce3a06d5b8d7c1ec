"""``--admission-control-config-file``'s loader: an AdmissionConfiguration in YAML or JSON,
plugin configuration embedded or at a path relative to the file, PodSecurity's
``PodSecurityConfiguration`` in its three versions, and kube-apiserver's exact text for
every file it refuses to start with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyk8s.api.errors import StatusError
from pyk8s.api.podsecurity import Level, PodSecurityConfig
from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver.admission import CREATE, Attributes, Context, enabled_plugins
from pyk8s.apiserver.admission.config import (
    AdmissionConfigError,
    PluginConfiguration,
    decode_pod_security_configuration,
    load_admission_config,
    read_admission_configuration,
)
from pyk8s.apiserver.admission.podsecurity import PodSecurity
from pyk8s.apiserver.authn import UserInfo

JSON = dict[str, Any]

PSC = "pod-security.admission.config.k8s.io"
V1 = f"apiVersion: {PSC}/v1, kind: PodSecurityConfiguration"
ADMISSION_V1 = "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\n"
READ = "failed to apply admission: failed to read plugin config: "
INIT = 'failed to apply admission: couldn\'t init admission plugin "PodSecurity": '
INVALID = 'failed to apply admission: failed to initialize admission plugin "PodSecurity": '

HARDENED = f"""{ADMISSION_V1}plugins:
- name: PodSecurity
  configuration:
    apiVersion: {PSC}/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: v1.31
      warn: restricted
    exemptions:
      usernames: [system:serviceaccount:ci:deployer]
      runtimeClasses: [kata]
      namespaces: [kube-system, monitoring]
"""


def write(tmp_path: Path, text: str, name: str = "admission.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(path: Path | str, enabled: list[str] | None = None) -> dict[str, Any]:
    return load_admission_config(path, enabled_plugins() if enabled is None else enabled)


def refused(path: Path | str, enabled: list[str] | None = None) -> str:
    with pytest.raises(AdmissionConfigError) as info:
        load(path, enabled)
    return str(info.value)


def pod_security(text: str) -> str:
    with pytest.raises(AdmissionConfigError) as info:
        decode_pod_security_configuration(text.encode())
    return str(info.value)


# ---------------------------------------------------------------------- what is read


def test_pod_security_defaults_and_exemptions_embedded(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, HARDENED))["PodSecurity"]
    assert isinstance(cfg, PodSecurityConfig)
    assert cfg.defaults.enforce.level is Level.BASELINE
    assert str(cfg.defaults.enforce.version) == "v1.31"
    assert cfg.defaults.warn.level is Level.RESTRICTED
    assert cfg.defaults.audit.level is Level.PRIVILEGED  # unset: privileged, latest
    assert cfg.defaults.audit.version.latest
    assert cfg.exempt_namespaces == {"kube-system", "monitoring"}
    assert cfg.exempt_usernames == {"system:serviceaccount:ci:deployer"}
    assert cfg.exempt_runtime_classes == {"kata"}


def test_no_file_and_no_entry_leave_plugins_unconfigured(tmp_path: Path) -> None:
    assert load_admission_config(None, enabled_plugins()) == {}
    assert load_admission_config("", enabled_plugins()) == {}
    assert load(write(tmp_path, ADMISSION_V1)) == {}
    assert load(write(tmp_path, ADMISSION_V1 + "plugins: []\n")) == {}


def test_a_path_is_relative_to_the_files_directory_and_may_be_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "etc" / "admission.yaml"
    write(
        tmp_path,
        ADMISSION_V1 + "plugins:\n- name: PodSecurity\n  path: psa/pss.json\n",
        "etc/admission.yaml",
    )
    pss = {"apiVersion": f"{PSC}/v1beta1", "kind": "PodSecurityConfiguration",
           "defaults": {"enforce": "restricted"}}  # fmt: skip
    write(tmp_path, json.dumps(pss), "etc/psa/pss.json")
    entries = read_admission_configuration(conf)
    assert entries == [PluginConfiguration("PodSecurity", str(tmp_path / "etc/psa/pss.json"))]
    assert load(conf)["PodSecurity"].defaults.enforce.level is Level.RESTRICTED
    # a relative configuration file: its directory is taken from the working directory
    monkeypatch.chdir(tmp_path / "etc")
    assert read_admission_configuration("admission.yaml")[0].path == str(
        tmp_path / "etc/psa/pss.json"
    )
    # an absolute path stays as written
    write(
        tmp_path,
        ADMISSION_V1 + f"plugins:\n- name: PodSecurity\n  path: {tmp_path}/etc/psa/pss.json\n",
    )
    assert read_admission_configuration(tmp_path / "admission.yaml")[0].path == str(
        tmp_path / "etc/psa/pss.json"
    )


def test_the_whole_file_may_be_json_and_v1alpha1(tmp_path: Path) -> None:
    doc = {
        "apiVersion": "apiserver.k8s.io/v1alpha1",  # v1alpha1 lives in apiserver.k8s.io
        "kind": "AdmissionConfiguration",
        "plugins": [
            {
                "name": "PodSecurity",
                "configuration": {
                    "apiVersion": f"{PSC}/v1alpha1",
                    "kind": "PodSecurityConfiguration",
                    "exemptions": {"namespaces": ["x"]},
                },
            }
        ],
    }
    cfg = load(write(tmp_path, json.dumps(doc), "admission.json"))["PodSecurity"]
    assert cfg.exempt_namespaces == {"x"}
    assert cfg.defaults.enforce.level is Level.PRIVILEGED


def test_only_enabled_plugins_are_read_and_the_first_entry_wins(tmp_path: Path) -> None:
    text = f"""{ADMISSION_V1}plugins:
- name: NoSuchPlugin
  path: missing.yaml
- name: PodSecurity
  configuration: {{{V1}, defaults: {{enforce: restricted}}}}
- name: PodSecurity
  configuration: {{{V1}, defaults: {{enforce: bogus}}}}
- name: ResourceQuota
  path: quota.yaml
"""
    path = write(tmp_path, text)
    write(tmp_path, "limitedResources: []\n", "quota.yaml")
    got = load(path)
    assert got["PodSecurity"].defaults.enforce.level is Level.RESTRICTED
    # a plugin pyk8s cannot configure yet gets the bytes upstream would hand it
    assert got["ResourceQuota"] == b"limitedResources: []\n"
    # a disabled plugin's configuration is never read, so it cannot stop the server
    broken = text.replace("defaults: {enforce: restricted}", "defaults: {enforce: bogus}")
    assert "PodSecurity" not in load(write(tmp_path, broken), ["NamespaceLifecycle"])


def test_empty_pod_security_configuration_means_upstreams_defaults(tmp_path: Path) -> None:
    write(tmp_path, "", "empty.yaml")
    path = write(tmp_path, ADMISSION_V1 + "plugins:\n- name: PodSecurity\n  path: empty.yaml\n")
    assert load(path)["PodSecurity"] == PodSecurityConfig()
    assert decode_pod_security_configuration(None) == PodSecurityConfig()


def test_legacy_unversioned_files_configure_nothing(tmp_path: Path) -> None:
    assert (
        load(write(tmp_path, "podNodeSelectorPluginConfig:\n  clusterDefaultNodeSelector: a=b\n"))
        == {}
    )


# ---------------------------------------------------------------------- refused files


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert refused(missing) == (
        f'{READ}unable to read admission control configuration from "{missing}" '
        f"[open {missing}: no such file or directory]"
    )
    assert refused(tmp_path) == (
        f'{READ}unable to read admission control configuration from "{tmp_path}" '
        f"[read {tmp_path}: is a directory]"
    )
    path = write(tmp_path, ADMISSION_V1 + "plugins:\n- name: PodSecurity\n  path: psa.yaml\n")
    assert refused(path) == (
        f"Couldn't open admission plugin configuration {tmp_path}/psa.yaml: "
        f'&fs.PathError{{Op:"open", Path:"{tmp_path}/psa.yaml", Err:0x2}}'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "apiVersion: apiserver.config.k8s.io/v2\nkind: AdmissionConfiguration\n",
            'no kind "AdmissionConfiguration" is registered for version '
            '"apiserver.config.k8s.io/v2" in scheme '
            '"k8s.io/apiserver/pkg/server/options/admission.go:50"',
        ),
        (
            # upstream has no v1beta1 AdmissionConfiguration, and v1alpha1's group differs
            "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AdmissionConfiguration\n",
            'no kind "AdmissionConfiguration" is registered for version '
            '"apiserver.config.k8s.io/v1beta1" in scheme '
            '"k8s.io/apiserver/pkg/server/options/admission.go:50"',
        ),
        (
            # the PodSecurityConfiguration given directly instead of inside the file
            f"apiVersion: {PSC}/v1\nkind: PodSecurityConfiguration\n",
            f'no kind "PodSecurityConfiguration" is registered for version "{PSC}/v1" in '
            'scheme "k8s.io/apiserver/pkg/server/options/admission.go:50"',
        ),
        ("", "Object 'Kind' is missing in ''"),
        ("plugins: []\n", "Object 'Kind' is missing in 'plugins: []\n'"),
        (
            "kind: AdmissionConfiguration\n",
            "Object 'apiVersion' is missing in 'kind: AdmissionConfiguration\n'",
        ),
        ("apiVersion: a/b/c\nkind: X\n", "unexpected GroupVersion string: a/b/c"),
        (
            "apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\n",
            "unexpected type: *apiserver.TracingConfiguration",
        ),
        (
            "kind: AdmissionConfiguration\napiVersion: x\n  plugins: []\n",
            "error converting YAML to JSON: yaml: line 3: mapping values are not allowed in "
            "this context",
        ),
        (
            '{"kind": "AdmissionConfiguration",}',
            "couldn't get version/kind; json parse error: invalid character '}' looking for "
            "beginning of object key string",
        ),
        (
            "- a\n",
            "couldn't get version/kind; json parse error: json: cannot unmarshal array into "
            'Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; '
            'Kind string "json:\\"kind,omitempty\\"" }',
        ),
        (
            ADMISSION_V1 + "plugins: {name: PodSecurity}\n",
            "json: cannot unmarshal object into Go struct field AdmissionConfiguration.plugins "
            "of type []v1.AdmissionPluginConfiguration",
        ),
        (
            "apiVersion: apiserver.k8s.io/v1alpha1\nkind: AdmissionConfiguration\n"
            "plugins: [{name: PodSecurity, path: [a]}]\n",
            "json: cannot unmarshal array into Go struct field "
            "AdmissionPluginConfiguration.plugins.path of type string",
        ),
    ],
)
def test_admission_configuration_errors(tmp_path: Path, text: str, message: str) -> None:
    assert refused(write(tmp_path, text)) == READ + message


def test_unknown_fields_of_the_admission_configuration_are_ignored(tmp_path: Path) -> None:
    # upstream decodes AdmissionConfiguration leniently (PodSecurity's is strict)
    assert load(write(tmp_path, ADMISSION_V1 + "plugin: []\nextra: 1\n")) == {}


def embedded(configuration: str) -> str:
    return f"{ADMISSION_V1}plugins:\n- name: PodSecurity\n  configuration: {configuration}\n"


@pytest.mark.parametrize(
    ("configuration", "message"),
    [
        ("{}", INIT + "Object 'Kind' is missing in '{}'"),
        (
            "{kind: PodSecurityConfiguration, defaults: {enforce: baseline}}",
            INIT + "Object 'apiVersion' is missing in "
            '\'{"defaults":{"enforce":"baseline"},"kind":"PodSecurityConfiguration"}\'',
        ),
        (
            f"{{apiVersion: {PSC}/v2, kind: PodSecurityConfiguration}}",
            INIT + f'no kind "PodSecurityConfiguration" is registered for version "{PSC}/v2" '
            'in scheme "k8s.io/pod-security-admission/admission/api/scheme/scheme.go:31"',
        ),
        (
            f"{{apiVersion: {PSC}/v1, kind: PodSecurityConfiguration, deflaults: {{}}, "
            "exemptions: {namespace: [x]}}",
            INIT + 'strict decoding error: unknown field "deflaults", unknown field '
            '"exemptions.namespace"',
        ),
        (
            f"{{apiVersion: {PSC}/v1, kind: PodSecurityConfiguration, "
            "defaults: {enforce: baseline, enforce-version: 1.30}}",
            INIT + "json: cannot unmarshal number into Go struct field "
            "PodSecurityDefaults.defaults.enforce-version of type string",
        ),
        (
            f"{{apiVersion: {PSC}/v1beta1, kind: PodSecurityConfiguration, "
            "exemptions: {usernames: alice}}",
            INIT + "json: cannot unmarshal string into Go struct field "
            "PodSecurityExemptions.exemptions.usernames of type []string",
        ),
        (
            f"{{{V1}, defaults: {{enforce: strict}}}}",
            INVALID + "PodSecurity configuration error: Enforce.Level: must be one of "
            "privileged, baseline, restricted",
        ),
        (
            f"{{apiVersion: {PSC}/v1, kind: PodSecurityConfiguration, "
            "defaults: {warn-version: v2.0, audit: none}}",
            INVALID + "PodSecurity configuration error: [Audit.Level: must be one of "
            'privileged, baseline, restricted, Warn.Version: must be "latest" or "v1.x"]',
        ),
        (
            f"{{apiVersion: {PSC}/v1, kind: PodSecurityConfiguration, "
            "exemptions: {namespaces: [ok, Not_OK, ok], usernames: ['']}}",
            INVALID + 'PodSecurity invalid: [exemptions.namespaces[1]: Invalid value: "Not_OK": '
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
            "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?'), "
            'exemptions.namespaces[2]: Duplicate value: "ok", '
            "exemptions.usernames[0]: Required value]",
        ),
    ],
)
def test_pod_security_configuration_errors(
    tmp_path: Path, configuration: str, message: str
) -> None:
    assert refused(write(tmp_path, embedded(configuration))) == message


def test_pod_security_file_errors_quote_the_file_as_written() -> None:
    text = "apiVersion: v1\n# no kind\n"
    assert pod_security(text) == INIT + f"Object 'Kind' is missing in '{text}'"
    assert pod_security("apiVersion: [\n") == INIT + (
        "error converting YAML to JSON: yaml: line 1: did not find expected node content"
    )


# ---------------------------------------------------------------------- reaching the plugin


class _Reader:
    def __init__(self, namespaces: dict[str, JSON]) -> None:
        self.namespaces = namespaces

    async def get(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        return self.namespaces.get(name) if plural == "namespaces" else None

    def cached(self, group: str, plural: str, namespace: str, name: str) -> JSON | None:
        return None

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[JSON]:
        return []


def privileged_pod(ns: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": ns},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }


async def test_the_plugin_enforces_the_files_defaults_and_exemptions(tmp_path: Path) -> None:
    config = load(write(tmp_path, HARDENED))
    namespaces: dict[str, JSON] = {
        n: {"metadata": {"name": n, "labels": {}}} for n in ("plain", "monitoring")
    } | {
        "labelled": {
            "metadata": {
                "name": "labelled",
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
            }
        }
    }
    plugin = PodSecurity(Context(_Reader(namespaces), config=config))
    pods = REGISTRY.get("", "v1", "pods")
    assert pods is not None

    def attrs(ns: str) -> Attributes:
        return Attributes(CREATE, pods, ns, "p", privileged_pod(ns), None, UserInfo("alice"))

    with pytest.raises(StatusError) as info:
        await plugin.validate(attrs("plain"))
    assert info.value.code == 403
    assert info.value.message == (
        'pods "p" is forbidden: violates PodSecurity "baseline:v1.31": privileged '
        '(container "c" must not set securityContext.privileged=true)'
    )
    await plugin.validate(attrs("monitoring"))  # exempt namespace
    await plugin.validate(attrs("labelled"))  # the namespace's own label wins
