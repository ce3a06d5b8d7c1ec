"""Label and field selectors against upstream's behaviour (cases from apimachinery's tests)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyk8s.api.registry import REGISTRY, Resource
from pyk8s.api.selectors import (
    FieldSelector,
    FieldTerm,
    LabelSelector,
    Requirement,
    SelectorError,
    check_field_selector,
    escape_field_value,
    field_values,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    validate_label_key,
    validate_label_value,
)


def res(group: str, version: str, plural: str) -> Resource:
    r = REGISTRY.get(group, version, plural)
    assert r is not None
    return r


VALUE_REGEX_HELP = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)

# ---------------------------------------------------------------------------- label parsing


@pytest.mark.parametrize(
    "text",
    ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5"],
)
def test_good_strings_round_trip_without_spaces(text: str) -> None:
    assert str(parse_label_selector(text)) == text.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("\rx", "x"),
        ("this-is-a-dns.domain.com/key-with-dash", "this-is-a-dns.domain.com/key-with-dash"),
        (
            "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
            "0.1.2.domain/99 notin (10.10.100.1,tick.tack.clock)",
        ),
        ("foo  in\t (abc)", "foo in (abc)"),
        ("x notin\n (abc)", "x notin (abc)"),
        ("x  notin\t\t\t(abc,def)", "x notin (abc,def)"),
        ("x in (abc,)", "x in (,abc)"),
        ("x in ()", "x in ()"),
        ("x notin (abc,,def),bar,z in (),w", "bar,w,x notin (,abc,def),z in ()"),
        ("x,y in (a)", "x,y in (a)"),
        ("x=a,y!=b,z in (h,i,j)", "x=a,y!=b,z in (h,i,j)"),
        ("x notin ( )", "x notin ()"),
        ("x notin (, a)", "x notin (,a)"),
        ("a ", "a"),
        ("a in (x,y,notin, z,in)", "a in (in,notin,x,y,z)"),
        ("notin=in", "notin=in"),
        ("x == a", "x==a"),
        ("z=1,a=2,m", "a=2,m,z=1"),
        ("x in (b,a,b)", "x in (a,b)"),
    ],
)
def test_parse_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


def test_parse_is_deterministic() -> None:
    assert str(parse_label_selector("x=a,a=x")) == str(parse_label_selector("a=x,x=a"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x==a==b", "found '==', expected: ',' or 'end of string'"),
        ("!x=a", "found '=', expected: ',' or 'end of string'"),
        ("x,,y", "found ',', expected: identifier after ','"),
        (",x,y", "found ',', expected: !, identifier, or 'end of string'"),
        (
            "x nott in (y)",
            "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt",
        ),
        ("a in (xyz),", "found '', expected: identifier after ','"),
        ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'"),
        ("a in (xyz abc)", "unable to parse requirement: found 'abc', expected: ',' or ')'"),
        ("a notin(", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
        ("a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        ("x in", "unable to parse requirement: found '' expected: '('"),
        ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("x in (a,(", "unable to parse requirement: found '(', expected: ',', or identifier"),
        ("x=(", "unable to parse requirement: found '(', expected: identifier"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
        ("!!a", "unable to parse requirement: found '!', expected: identifier"),
        (
            "x<a",
            'unable to parse requirement: values[0]: Invalid value: "a": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "x=a||y=b",
            f'unable to parse requirement: values[0][x]: Invalid value: "a||y": {VALUE_REGEX_HELP}',
        ),
        (
            "a=b@",
            f'unable to parse requirement: values[0][a]: Invalid value: "b@": {VALUE_REGEX_HELP}',
        ),
    ],
)
def test_parse_errors_match_upstream(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector(text)
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


def test_bad_key_is_reported_with_nil_path() -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector("a/b/c=d")
    assert str(err.value).startswith(
        'unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name must '
        "consist of alphanumeric characters"
    )
    assert str(err.value).endswith(
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    )


def test_value_too_long_lists_both_problems() -> None:
    with pytest.raises(SelectorError) as err:
        parse_label_selector("x=" + "a" * 64)
    assert "must be no more than 63 characters" in str(err.value)


def test_nul_ends_the_string_as_in_go() -> None:
    assert str(parse_label_selector("x=a\0garbage ((")) == "x=a"


# ---------------------------------------------------------------------------- label matching


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("", {"x": "y"}),
        ("x=y", {"x": "y"}),
        ("x=y,z=w", {"x": "y", "z": "w"}),
        ("x!=y,z!=w", {"x": "z", "z": "a"}),
        ("notin=in", {"notin": "in"}),
        ("x", {"x": "z"}),
        ("!x", {"y": "z"}),
        ("x>1", {"x": "2"}),
        ("x<1", {"x": "0"}),
        ("x in (a,b)", {"x": "b"}),
        ("x notin (a,b)", {"y": "a"}),
        ("x in ()", {"x": ""}),
        ("foo=bar,baz=blah", {"foo": "bar", "baz": "blah"}),
        ("x<10", {"x": "+9"}),
    ],
)
def test_matches(text: str, labels: dict[str, str]) -> None:
    assert parse_label_selector(text).matches(labels)


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("x=z", {}),
        ("x=y", {"x": "z"}),
        ("x=y,z=w", {"x": "w", "z": "w"}),
        ("x!=y,z!=w", {"x": "z", "z": "w"}),
        ("x", {"y": "z"}),
        ("!x", {"x": "z"}),
        ("x>1", {"x": "0"}),
        ("x<1", {"x": "2"}),
        ("x>1", {"x": "v2"}),
        ("x>1", {}),
        ("x in ()", {"y": ""}),
        ("foo=bar,foobar=bar,baz=blah", {"foo": "bar", "baz": "blah"}),
    ],
)
def test_does_not_match(text: str, labels: dict[str, str]) -> None:
    assert not parse_label_selector(text).matches(labels)


def test_matches_none_labels_as_empty() -> None:
    assert parse_label_selector("!x").matches(None)
    assert not parse_label_selector("x").matches(None)
    assert parse_label_selector("").matches(None)


def test_requirement_constructor_errors() -> None:
    cases: list[tuple[str, str, list[str] | None, str]] = [
        (
            "x1",
            "in",
            [],
            "values: Invalid value: []string{}: for 'in', 'notin' operators, "
            "values set can't be empty",
        ),
        (
            "x5",
            "=",
            ["bar", "foo"],
            'values: Invalid value: []string{"bar", "foo"}: '
            "exact-match compatibility requires one single value",
        ),
        (
            "x8",
            "exists",
            ["foo"],
            'values: Invalid value: []string{"foo"}: values set must be '
            "empty for exists and does not exist",
        ),
        (
            "x13",
            "gt",
            [],
            "values: Invalid value: []string{}: for 'Gt', 'Lt' operators, "
            "exactly one value is required",
        ),
        (
            "x14",
            "gt",
            ["bar"],
            "values[0]: Invalid value: \"bar\": for 'Gt', 'Lt' operators, "
            "the value must be an integer",
        ),
        (
            "x18",
            "unsupportedOp",
            [],
            'operator: Unsupported value: "unsupportedOp": supported '
            'values: "in", "notin", "=", "==", "!=", "gt", "lt", "exists", "!"',
        ),
    ]
    for key, op, values, message in cases:
        with pytest.raises(SelectorError) as err:
            Requirement.new(key, op, values)
        assert str(err.value) == message
    too_long_key = "a" * 254
    with pytest.raises(SelectorError, match=r'^key: Invalid value: "a+": '):
        Requirement.new(too_long_key, "exists", [])
    with pytest.raises(SelectorError, match=r"^values\[0\]\[x17\]: Invalid value: \"a b\": "):
        Requirement.new("x17", "=", ["a b"])


@pytest.mark.parametrize(
    ("reqs", "text"),
    [
        (
            [("x", "in", ["abc", "def"]), ("y", "notin", ["jkl"]), ("z", "exists", [])],
            "x in (abc,def),y notin (jkl),z",
        ),
        (
            [("x", "notin", ["abc", "def"]), ("y", "!=", ["jkl"]), ("z", "!", [])],
            "x notin (abc,def),y!=jkl,!z",
        ),
        (
            [("x", "notin", ["abc"]), ("y", "in", ["jkl", "mno"]), ("z", "notin", [""])],
            "x notin (abc),y in (jkl,mno),z notin ()",
        ),
        (
            [("x", "=", ["abc"]), ("y", "==", ["jkl"]), ("z", "!=", ["a"]), ("z", "exists", [])],
            "x=abc,y==jkl,z!=a,z",
        ),
        ([("x", "gt", ["2"]), ("y", "lt", ["8"]), ("z", "exists", [])], "x>2,y<8,z"),
    ],
)
def test_to_string(reqs: list[tuple[str, str, list[str]]], text: str) -> None:
    sel = LabelSelector().add(*(Requirement.new(k, o, v) for k, o, v in reqs))
    assert str(sel) == text


def test_requires_exact_match() -> None:
    sel = parse_label_selector("a=1,b in (2),c in (3,4),d!=5")
    assert sel.requires_exact_match("a") == "1"
    assert sel.requires_exact_match("b") == "2"
    assert sel.requires_exact_match("c") is None
    assert sel.requires_exact_match("d") is None
    assert sel.requires_exact_match("zz") is None


def test_from_set() -> None:
    sel = LabelSelector.from_set({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"})
    assert LabelSelector.from_set(None).empty
    assert LabelSelector.from_set({}).matches({"x": "y"})


# ---------------------------------------------------------------- metav1.LabelSelector objects


def test_none_selects_nothing_and_empty_selects_everything() -> None:
    nothing = label_selector_from_dict(None)
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert str(nothing) == "" and not nothing.empty
    assert nothing.add(Requirement.new("a", "exists")) == nothing
    for everything in (
        label_selector_from_dict({}),
        label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}),
    ):
        assert everything.empty
        assert everything.matches({}) and everything.matches({"a": "b"})


def test_match_labels_and_expressions() -> None:
    sel = label_selector_from_dict(
        {
            "matchLabels": {"b": "1", "a": "2"},
            "matchExpressions": [
                {"key": "a", "operator": "In", "values": ["z", "y", "2"]},
                {"key": "c", "operator": "Exists"},
                {"key": "d", "operator": "DoesNotExist"},
                {"key": "e", "operator": "NotIn", "values": ["x"]},
            ],
        }
    )
    assert str(sel) == "a=2,a in (2,y,z),b=1,c,!d,e notin (x)"
    assert sel.matches({"a": "2", "b": "1", "c": ""})
    assert not sel.matches({"a": "2", "b": "1", "c": "", "d": ""})
    assert not sel.matches({"a": "2", "b": "1", "c": "", "e": "x"})
    assert not sel.matches({"a": "y", "b": "1", "c": ""})


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Foo"}]},
            '"Foo" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set "
            "can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: []string{"x"}: values set must be empty for exists and does '
            "not exist",
        ),
        ({"matchLabels": {"a": "b c"}}, f'values[0][a]: Invalid value: "b c": {VALUE_REGEX_HELP}'),
    ],
)
def test_label_selector_object_errors(obj: dict[str, object], message: str) -> None:
    with pytest.raises(SelectorError) as err:
        label_selector_from_dict(obj)
    assert str(err.value) == message


def test_several_errors_are_aggregated_in_brackets() -> None:
    with pytest.raises(SelectorError) as err:
        label_selector_from_dict({"matchLabels": {"a/b/c": "x@"}})
    text = str(err.value)
    assert text.startswith('[key: Invalid value: "a/b/c": a qualified name')
    assert ', values[0][a/b/c]: Invalid value: "x@": a valid label' in text
    assert text.endswith("]")


def test_key_validation() -> None:
    assert validate_label_key("example.com/My-name_1.x") == []
    assert validate_label_key("x" * 63) == []
    assert validate_label_key("x" * 64) == ["name part must be no more than 63 characters"]
    assert validate_label_key("/a") == ["prefix part must be non-empty"]
    assert validate_label_key("a/")[0] == "name part must be non-empty"
    assert validate_label_key("Example.com/a")[0].startswith(
        "prefix part a lowercase RFC 1123 subdomain must consist of"
    )
    assert validate_label_value("") == []
    assert validate_label_value("-a") == [VALUE_REGEX_HELP]


label_names = st.from_regex(r"[a-z]([a-z0-9.-]{0,8}[a-z0-9])?", fullmatch=True)


@given(
    st.lists(
        st.tuples(
            label_names,
            st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!"]),
            st.lists(label_names | st.just(""), min_size=1, max_size=3, unique=True),
        ),
        max_size=4,
    )
)
def test_string_form_round_trips(terms: list[tuple[str, str, list[str]]]) -> None:
    reqs = []
    for key, op, values in terms:
        if op in ("exists", "!"):
            values = []
        elif op in ("=", "==", "!="):
            values = values[:1]
        reqs.append(Requirement.new(key, op, values))
    sel = LabelSelector().add(*reqs)
    again = parse_label_selector(str(sel))
    assert str(again) == str(sel)


# ---------------------------------------------------------------------------- field selectors


@pytest.mark.parametrize(
    ("text", "terms", "canonical"),
    [
        ("", [], ""),
        ("a=b", [("a", "=", "b")], "a=b"),
        ("a==b", [("a", "=", "b")], "a=b"),
        ("b=c,a==d", [("a", "=", "d"), ("b", "=", "c")], "a=d,b=c"),
        ("x!=y", [("x", "!=", "y")], "x!=y"),
        ("a=", [("a", "=", "")], "a="),
        ("a=b,,c=d", [("a", "=", "b"), ("c", "=", "d")], "a=b,c=d"),
        (r"a=b\,c", [("a", "=", "b,c")], r"a=b\,c"),
        (r"a=b\=c\\", [("a", "=", "b=c\\")], r"a=b\=c\\"),
        ("=a", [("", "=", "a")], "=a"),
        ("a!=", [("a", "!=", "")], "a!="),
        ("a!==b", [("a", "!=", "=b")], None),
    ],
)
def test_field_selector_parse(
    text: str, terms: list[tuple[str, str, str]], canonical: str | None
) -> None:
    if canonical is None:
        with pytest.raises(SelectorError, match="unescaped character in value: 61"):
            parse_field_selector(text)
        return
    sel = parse_field_selector(text)
    assert [(t.field, t.op, t.value) for t in sel.terms] == terms
    assert str(sel) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        ("a===b", "invalid field selector: unescaped character in value: 61"),
        (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as err:
        parse_field_selector(text)
    assert str(err.value) == message


def test_field_selector_matching() -> None:
    sel = parse_field_selector("status.phase!=Running,spec.restartPolicy=Always")
    assert sel.matches({"status.phase": "Pending", "spec.restartPolicy": "Always"})
    assert not sel.matches({"status.phase": "Running", "spec.restartPolicy": "Always"})
    assert parse_field_selector("x=").matches({})  # a missing field reads as ""
    assert parse_field_selector("x!=a").matches({})
    assert FieldSelector().matches({"a": "b"}) and FieldSelector().empty
    assert sel.requires_exact_match("spec.restartPolicy") == "Always"
    assert sel.requires_exact_match("status.phase") is None


@given(st.text(max_size=12))
def test_field_value_escaping_round_trips(value: str) -> None:
    sel = FieldSelector((FieldTerm("metadata.name", "=", value),))
    assert parse_field_selector(str(sel)).terms == sel.terms
    assert str(FieldTerm("f", "!=", value)) == "f!=" + escape_field_value(value)


# --------------------------------------------------------------- per-kind field label checks


@pytest.mark.parametrize(
    ("resource", "text", "converted"),
    [
        (
            ("", "v1", "pods"),
            "spec.nodeName=n1,status.phase!=Running",
            "spec.nodeName=n1,status.phase!=Running",
        ),
        (("", "v1", "pods"), "spec.host=n1", "spec.nodeName=n1"),
        (("", "v1", "pods"), "status.podIPs=10.0.0.1", "status.podIPs=10.0.0.1"),
        (("", "v1", "nodes"), "spec.unschedulable=false", "spec.unschedulable=false"),
        (
            ("", "v1", "events"),
            "involvedObject.name=x,type=Warning",
            "involvedObject.name=x,type=Warning",
        ),
        (
            ("events.k8s.io", "v1", "events"),
            "regarding.name=x,reportingController=k",
            "involvedObject.name=x,reportingComponent=k",
        ),
        (("", "v1", "secrets"), "type=Opaque", "type=Opaque"),
        (("", "v1", "namespaces"), "status.phase=Active", "status.phase=Active"),
        (
            ("", "v1", "services"),
            "spec.clusterIP!=None,spec.type=ClusterIP",
            "spec.clusterIP!=None,spec.type=ClusterIP",
        ),
        (("", "v1", "replicationcontrollers"), "status.replicas=0", "status.replicas=0"),
        (("batch", "v1", "jobs"), "status.successful=1", "status.successful=1"),
        (
            ("apps", "v1", "deployments"),
            "metadata.name=a,metadata.namespace=b",
            "metadata.name=a,metadata.namespace=b",
        ),
        (
            ("rbac.authorization.k8s.io", "v1", "clusterroles"),
            "metadata.namespace=",
            "metadata.namespace=",
        ),
    ],
)
def test_check_field_selector_accepts(
    resource: tuple[str, str, str], text: str, converted: str
) -> None:
    assert str(check_field_selector(res(*resource), parse_field_selector(text))) == converted


@pytest.mark.parametrize(
    ("resource", "text", "message"),
    [
        (("", "v1", "pods"), "foo=bar", "field label not supported: foo"),
        (
            ("", "v1", "nodes"),
            "metadata.namespace=x",
            "field label not supported: metadata.namespace",
        ),
        (
            ("", "v1", "namespaces"),
            "metadata.namespace=x",
            "field label not supported: metadata.namespace",
        ),
        (
            ("events.k8s.io", "v1", "events"),
            "involvedObject.name=x",
            "field label not supported: involvedObject.name",
        ),
        (
            ("batch", "v1", "jobs"),
            "status.active=1",
            'field label "status.active" not supported for Job',
        ),
        (
            ("networking.k8s.io", "v1", "ingresses"),
            "foo.bar=baz",
            '"foo.bar" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
        # upstream registers no conversion for apps/v1 ReplicaSet (kubernetes#135136)
        (
            ("apps", "v1", "replicasets"),
            "status.replicas=0",
            '"status.replicas" is not a known field selector: only "metadata.name", '
            '"metadata.namespace"',
        ),
        (("", "v1", "pods"), "a=1,zzz=2", "field label not supported: a"),
    ],
)
def test_check_field_selector_rejects(
    resource: tuple[str, str, str], text: str, message: str
) -> None:
    with pytest.raises(SelectorError) as err:
        check_field_selector(res(*resource), parse_field_selector(text))
    assert str(err.value) == message


# ------------------------------------------------------------------ per-resource field values


def test_pod_field_values() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "nodeName": "n1",
            "restartPolicy": "Always",
            "schedulerName": "default",
            "serviceAccountName": "sa",
            "hostNetwork": True,
        },
        "status": {
            "phase": "Running",
            "podIP": "ignored",
            "podIPs": [{"ip": "10.0.0.1"}],
            "nominatedNodeName": "n2",
        },
    }
    assert field_values(res("", "v1", "pods"), pod) == {
        "metadata.name": "p",
        "metadata.namespace": "ns",
        "spec.nodeName": "n1",
        "spec.restartPolicy": "Always",
        "spec.schedulerName": "default",
        "spec.serviceAccountName": "sa",
        "spec.hostNetwork": "true",
        "status.phase": "Running",
        "status.podIP": "10.0.0.1",
        "status.nominatedNodeName": "n2",
    }
    bare = field_values(
        res("", "v1", "pods"), {"metadata": {"name": "q"}, "status": {"podIP": "10.0.0.2"}}
    )
    assert bare["spec.hostNetwork"] == "false"
    assert bare["spec.nodeName"] == "" and bare["metadata.namespace"] == ""
    assert bare["status.podIP"] == "10.0.0.2"


def test_event_field_values_core_and_events_k8s_io() -> None:
    core = {
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {
            "kind": "Pod",
            "name": "p",
            "namespace": "ns",
            "uid": "u1",
            "apiVersion": "v1",
            "resourceVersion": "7",
            "fieldPath": "spec.containers{c}",
        },
        "reason": "Started",
        "type": "Normal",
        "reportingComponent": "kubelet",
        "source": {"component": "kubelet-src"},
    }
    got = field_values(res("", "v1", "events"), core)
    assert got["involvedObject.kind"] == "Pod" and got["involvedObject.uid"] == "u1"
    assert got["involvedObject.fieldPath"] == "spec.containers{c}"
    assert got["source"] == "kubelet-src" and got["reportingComponent"] == "kubelet"
    assert got["reason"] == "Started" and got["type"] == "Normal"
    del core["source"]
    assert field_values(res("", "v1", "events"), core)["source"] == "kubelet"

    new = {
        "metadata": {"name": "e", "namespace": "ns"},
        "regarding": {"kind": "Node", "name": "n"},
        "reason": "X",
        "type": "Warning",
        "reportingController": "ctl",
    }
    r = res("events.k8s.io", "v1", "events")
    got = field_values(r, new)
    assert got["involvedObject.kind"] == "Node" and got["source"] == "ctl"
    sel = check_field_selector(
        r, parse_field_selector("regarding.kind=Node,reportingController=ctl")
    )
    assert sel.matches(got)


@pytest.mark.parametrize(
    ("resource", "obj", "expected"),
    [
        (
            ("", "v1", "secrets"),
            {"metadata": {"name": "s", "namespace": "d"}, "type": "Opaque"},
            {"metadata.name": "s", "metadata.namespace": "d", "type": "Opaque"},
        ),
        (
            ("", "v1", "nodes"),
            {"metadata": {"name": "n"}, "spec": {"unschedulable": True}},
            {"metadata.name": "n", "spec.unschedulable": "true"},
        ),
        (
            ("", "v1", "nodes"),
            {"metadata": {"name": "n"}},
            {"metadata.name": "n", "spec.unschedulable": "false"},
        ),
        (
            ("", "v1", "namespaces"),
            {"metadata": {"name": "x"}, "status": {"phase": "Active"}},
            {"metadata.name": "x", "status.phase": "Active"},
        ),
        (
            ("", "v1", "services"),
            {
                "metadata": {"name": "s", "namespace": "d"},
                "spec": {"clusterIP": "None", "type": "ClusterIP"},
            },
            {
                "metadata.name": "s",
                "metadata.namespace": "d",
                "spec.clusterIP": "None",
                "spec.type": "ClusterIP",
            },
        ),
        (
            ("apps", "v1", "replicasets"),
            {"metadata": {"name": "r", "namespace": "d"}, "status": {"replicas": 3}},
            {"metadata.name": "r", "metadata.namespace": "d", "status.replicas": "3"},
        ),
        (
            ("", "v1", "replicationcontrollers"),
            {"metadata": {"name": "r", "namespace": "d"}},
            {"metadata.name": "r", "metadata.namespace": "d", "status.replicas": "0"},
        ),
        (
            ("batch", "v1", "jobs"),
            {"metadata": {"name": "j", "namespace": "d"}, "status": {"succeeded": 2}},
            {"metadata.name": "j", "metadata.namespace": "d", "status.successful": "2"},
        ),
        (
            ("apps", "v1", "deployments"),
            {"metadata": {"name": "x", "namespace": "d"}},
            {"metadata.name": "x", "metadata.namespace": "d"},
        ),
        (
            ("rbac.authorization.k8s.io", "v1", "clusterroles"),
            {"metadata": {"name": "x"}},
            {"metadata.name": "x"},
        ),
    ],
)
def test_field_values(
    resource: tuple[str, str, str], obj: dict[str, object], expected: dict[str, str]
) -> None:
    assert field_values(res(*resource), obj) == expected


def test_end_to_end_pod_filter() -> None:
    pods = res("", "v1", "pods")
    sel = check_field_selector(pods, parse_field_selector("spec.host=n1,status.phase!=Failed"))
    on_n1 = {"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}}
    on_n2 = {"metadata": {"name": "b"}, "spec": {"nodeName": "n2"}, "status": {"phase": "Running"}}
    assert sel.matches(field_values(pods, on_n1))
    assert not sel.matches(field_values(pods, on_n2))
