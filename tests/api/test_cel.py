"""CEL for CRD rules: compile errors, extension libraries, value typing, x-kubernetes-validations.

Expected texts are upstream's (cel-go v0.22 and apiextensions-apiserver v1.32): the examples
in k8s.io/apiserver/pkg/cel/library, the cases in apiextensions' schema/cel tests, and what
kubectl prints for a CR that breaks a rule.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pyk8s.api.cel import (
    PER_CALL_LIMIT,
    Activation,
    CELError,
    SchemaValidator,
    compile_expression,
    compile_schema_rules,
    to_cel,
    validate_rules,
)
from pyk8s.api.errors import FieldErrorType

SELF = ["self"]


def ev(expr: str, act: dict[str, Any] | None = None) -> Any:
    act = act or {}
    return compile_expression(expr, variables=list(act) or SELF).evaluate(act)


def compile_error(expr: str, variables: list[str] | None = None) -> str:
    with pytest.raises(CELError) as e:
        compile_expression(expr, variables=variables or SELF)
    return e.value.message


def runtime_error(expr: str, act: dict[str, Any]) -> str:
    prog = compile_expression(expr, variables=list(act))
    with pytest.raises(CELError) as e:
        prog.evaluate(act)
    return e.value.message


# ---- compiling ----


def test_syntax_error_is_cel_gos_text() -> None:
    assert compile_error("self.x +") == (
        "compilation failed: ERROR: <input>:1:9: Syntax error: mismatched input '<EOF>' "
        "expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, "
        "NUM_UINT, STRING, BYTES, IDENTIFIER}\n | self.x +\n | ........^"
    )


def test_undeclared_variable_and_function() -> None:
    assert compile_error("foo == 1") == (
        "compilation failed: ERROR: <input>:1:1: undeclared reference to 'foo' (in container '')"
        "\n | foo == 1\n | ^"
    )
    assert compile_error("self.fakeFunction()") == (
        "compilation failed: ERROR: <input>:1:18: undeclared reference to 'fakeFunction' "
        "(in container '')\n | self.fakeFunction()\n | .................^"
    )


def test_several_errors_are_listed_in_source_order() -> None:
    msg = compile_error("b == a")
    assert msg.count("ERROR: ") == 2
    assert msg.index("'b'") < msg.index("'a'")


def test_literal_validators() -> None:
    # upstream's ValidateRegexLiterals/DurationLiterals/TimestampLiterals
    assert "ERROR: <input>:1:19: invalid matches argument" in compile_error(
        "self.val1.matches(')')"
    )
    assert "ERROR: <input>:1:10: invalid duration argument" in compile_error("duration('1d')")
    assert "ERROR: <input>:1:11: invalid timestamp argument" in compile_error(
        "timestamp('1000-00-00T00:00:00Z')"
    )
    assert "expected type 'int' but found 'string'" in compile_error(
        "[1, 'a', false].filter(x, string(x) == 'a')"
    )


def test_comprehension_variables_and_type_names_are_declared() -> None:
    assert ev("[1, 2].all(x, x > 0) && type(1) == int") is True
    assert ev("{'a': 1}.exists(k, k == 'a')") is True


def test_programs_are_cached_by_expression_and_variables() -> None:
    a = compile_expression("self.a == 1", variables=["self"])
    assert compile_expression("self.a == 1", variables=("self",)) is a
    assert compile_expression("self.a == 1", variables=["self", "oldSelf"]) is not a
    assert a.uses == frozenset({"self"})
    t = compile_expression("self == oldSelf", variables=["self", "oldSelf"])
    assert t.uses == frozenset({"self", "oldSelf"})


# ---- evaluating upstream's example rules ----


@pytest.mark.parametrize(
    ("rule", "act", "want"),
    [
        ("self.replicas <= self.maxReplicas", {"self": {"replicas": 3, "maxReplicas": 5}}, True),
        ("self.minReplicas <= self.replicas", {"self": {"replicas": 3, "minReplicas": 4}}, False),
        ("self.all(x, x.startsWith('a'))", {"self": ["ab", "ba"]}, False),
        ("has(self.foo) ? self.foo > 0 : true", {"self": {"bar": 1}}, True),
        ("has(self.foo) ? self.foo > 0 : true", {"self": {"foo": 0}}, False),
        ("self.name.matches('^[a-z]+$')", {"self": {"name": "abc"}}, True),
        ("oldSelf == self", {"self": {"a": [1]}, "oldSelf": {"a": [1]}}, True),
        ("self.size() <= 10", {"self": "0123456789x"}, False),
        ("self.map(x, x * 2).exists(y, y > 10)", {"self": [1, 6]}, True),
        ("self.filter(x, x > 1) == [2, 3]", {"self": [1, 2, 3]}, True),
        ("self.exists_one(x, x == 'a')", {"self": ["a", "a"]}, False),
        ("'a' in self && !('z' in self)", {"self": {"a": 1}}, True),
        ("1 < 1.5 && 2u == 2u", {}, True),
        ("self.x.endsWith('-x') && self.x.contains('b')", {"self": {"x": "abc-x"}}, True),
        ("type(self) == string ? self.matches('%$') : self < 10", {"self": "10%"}, True),
    ],
)
def test_upstream_example_rules(rule: str, act: dict[str, Any], want: bool) -> None:
    assert compile_expression(rule, variables=["self", "oldSelf"]).evaluate(act) is want


def test_string_size_counts_code_points() -> None:
    assert ev("'héllo'.size() == 5 && size(self) == 2", {"self": "日本"}) is True


@pytest.mark.parametrize(
    ("expr", "act", "msg"),
    [
        ("self.foo > 0", {"self": {"bar": 1}}, "no such key: foo"),
        ("self.val['c'] == 1", {"self": {"val": {"a": 1}}}, "no such key: c"),
        ("has(self.a1.d2.e2)", {"self": {"a1": {}}}, "no such key: d2"),
        ("self / 0 == 1", {"self": 1}, "division by zero"),
        ("self % 0 == 1", {"self": 1}, "modulus by zero"),
        ("self + 1 > 0", {"self": 2**63 - 1}, "integer overflow"),
        ("['a', 'b', 'c', 'd'][self] == 'a'", {"self": 4}, "index out of bounds: 4"),
        ("self + 'x' == 'x'", {"self": 1}, "no such overload"),
    ],
)
def test_runtime_errors_are_cel_gos(expr: str, act: dict[str, Any], msg: str) -> None:
    assert runtime_error(expr, act) == msg


def test_errors_absorbed_by_logic_do_not_fail() -> None:
    assert ev("true || self.nope == 1", {"self": {}}) is True
    assert ev("self.charAt(10) == 'x' || true", {"self": "a"}) is True


def test_function_errors_print_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    assert runtime_error("self.charAt(5) == 'x'", {"self": "ab"}) == "index out of range: 5"
    assert capfd.readouterr() == ("", "")


# ---- Kubernetes and cel-go extension libraries ----


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        # lists (k8s.io/apiserver/pkg/cel/library/lists.go)
        ("[1, 2, 3].isSorted()", True),
        ("['a', 'b', 'b', 'c'].isSorted()", True),
        ("[2.0, 1.0].isSorted()", False),
        ("[].isSorted()", True),
        ("[1, 3].sum()", 4),
        ("[1.0, 3.0].sum()", 4.0),
        ("[duration('1m'), duration('1s')].sum() == duration('61s')", True),
        ("[1, 3].min()", 1),
        ("[1, 3].max()", 3),
        ("[1, 2, 2, 3].indexOf(2)", 1),
        ("['a', 'b', 'b', 'c'].lastIndexOf('b')", 2),
        ("[1.0].indexOf(1.1)", -1),
        # strings (cel-go ext.Strings v2)
        ("'hello'.charAt(1)", "e"),
        ("'hello'.charAt(5)", ""),
        ("'hello mellow'.indexOf('ello')", 1),
        ("'hello mellow'.indexOf('ello', 6)", 7),
        ("'hello mellow'.lastIndexOf('ello')", 7),
        ("'hello mellow'.lastIndexOf('ello', 6)", 1),
        ("'TacoCat'.lowerAscii()", "tacocat"),
        ("'TacoCÆt'.upperAscii()", "TACOCÆT"),
        ("'hello hello'.replace('he', 'we')", "wello wello"),
        ("'hello hello'.replace('he', 'we', 1)", "wello hello"),
        ("'hello hello hello'.split(' ')", ["hello", "hello", "hello"]),
        ("'hello hello hello'.split(' ', 2)", ["hello", "hello hello"]),
        ("'tacocat'.substring(4)", "cat"),
        ("'tacocat'.substring(0, 4)", "taco"),
        ("'  \\ttrim\\n    '.trim()", "trim"),
        ("['hello', 'mellow'].join(' ')", "hello mellow"),
        ("'gums'.reverse()", "smug"),
        (
            "strings.quote('single-quote with \"double quote\"')",
            '"single-quote with \\"double quote\\""',
        ),
        ("'%s is %d years, %.2f tall'.format(['Bob', 42, 1.8])", "Bob is 42 years, 1.80 tall"),
        # regex (library/regex.go)
        ("'abc 123'.find('[0-9]+')", "123"),
        ("'abc 123'.find('xyz')", ""),
        ("'123 abc 456'.findAll('[0-9]+')", ["123", "456"]),
        ("'123 abc 456'.findAll('[0-9]+', 1)", ["123"]),
        ("'123 abc 456'.findAll('xyz')", []),
        # sets (cel-go ext.Sets)
        ("sets.contains([1, 2, 3], [2, 3])", True),
        ("sets.contains([1, 2], [3])", False),
        ("sets.equivalent([1, 2], [2, 1, 1])", True),
        ("sets.intersects([1], [1, 2])", True),
        # quantity (library/quantity.go)
        ("quantity('200M').compareTo(quantity('0.2G'))", 0),
        ("quantity('50M').compareTo(quantity('50Mi'))", -1),
        ("quantity('150Mi').isGreaterThan(quantity('100Mi'))", True),
        ("quantity('50M').isLessThan(quantity('100M'))", True),
        ("quantity('50000000G').isInteger()", True),
        ("quantity('9999999999999999999999999999999999999G').isInteger()", False),
        ("quantity('50k').asInteger() == 50000", True),
        ("quantity('50k').sub(20000).asApproximateFloat() == 30000.0", True),
        ("quantity('50k').add(quantity('20k')) == quantity('70k')", True),
        ("quantity('50k').add(20).sub(quantity('100k')).sub(-50000) == quantity('20')", True),
        ("quantity('1') == quantity('1000m')", True),
        ("quantity('-3').sign()", -1),
        ("isQuantity('1.3Gi') && !isQuantity('200K') && !isQuantity('1,3G')", True),
        # url (library/urls.go)
        ("url('https://example.com/').getScheme()", "https"),
        ("url('/path').getScheme()", ""),
        ("url('https://example.com:80/').getHost()", "example.com:80"),
        ("url('https://[::1]:80/').getHost()", "[::1]:80"),
        ("url('https://[::1]:80/').getHostname()", "::1"),
        ("url('https://127.0.0.1:80/').getHostname()", "127.0.0.1"),
        ("url('https://example.com:80/').getPort()", "80"),
        ("url('https://example.com/').getPort()", ""),
        ("url('https://example.com/path with spaces/').getEscapedPath()", "/path%20with%20spaces/"),
        ("url('https://example.com').getEscapedPath()", ""),
        (
            "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery()",
            {"k1": ["a"], "k2": ["b", "c"]},
        ),
        ("url('https://example.com/path?').getQuery()", {}),
        ("isURL('https://user:pass@example.com:80/path?query=val#fragment')", True),
        ("isURL('/absolute-path')", True),
        ("isURL('https://a:b:c/')", False),
        ("isURL('../relative-path')", False),
        # timestamps with a time zone
        ("timestamp('2023-01-01T02:00:00Z').getHours('America/New_York')", 21),
        ("timestamp('2023-01-01T02:00:00Z').getDayOfWeek('+05:30')", 0),
        ("timestamp('2023-03-04T05:06:07Z').getFullYear()", 2023),
        ("optional.none().orValue(2) + optional.of(1).value()", 3),
        # ip and cidr (library/ip.go, cidr.go)
        ("isIP('1.2.3.4') && isIP('2001:db8::1') && !isIP('1.2.3') && !isIP('01.2.3.4')", True),
        ("isIP('fe80::1%eth0') || isIP('::ffff:1.2.3.4')", False),
        ("ip('10.0.0.1').family() == 4 && ip('::1').family() == 6", True),
        ("ip('10.0.0.1').isGlobalUnicast() && !ip('127.0.0.1').isGlobalUnicast()", True),
        ("ip('169.254.1.1').isLinkLocalUnicast() && ip('ff02::1').isLinkLocalMulticast()", True),
        ("ip('0.0.0.0').isUnspecified() && ip('::1').isLoopback()", True),
        ("ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1')", True),
        ("string(ip('2001:db8:0:0::1'))", "2001:db8::1"),
        ("cidr('10.0.0.0/8').containsIP('10.1.2.3')", True),
        ("cidr('10.0.0.0/8').containsIP(ip('192.168.0.1'))", False),
        ("cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')", True),
        ("cidr('10.0.0.0/16').containsCIDR(cidr('10.0.0.0/8'))", False),
        ("string(cidr('192.168.1.5/24').masked())", "192.168.1.0/24"),
        ("cidr('192.168.1.5/24').ip() == ip('192.168.1.5')", True),
        ("cidr('::1/128').prefixLength()", 128),
        ("isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0') && !isCIDR('10.0.0.0/33')", True),
        # format (library/format.go)
        ("format.dns1123Label().validate('my-name').hasValue()", False),
        ("format.named('dns1123Subdomain').value().validate('a.b.c').hasValue()", False),
        ("format.named('nope').hasValue()", False),
        ("format.uuid().validate('not-a-uuid').value()", ["does not match the UUID format"]),
        (
            "format.dns1123Label().validate('Bad_Name').value()",
            [
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
                "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ],
        ),
    ],
)
def test_library_examples(expr: str, want: Any) -> None:
    assert ev(expr) == want


@pytest.mark.parametrize(
    ("expr", "msg"),
    [
        ("[].min() == 1", "min called on empty list"),
        ("'abc'.substring(2, 1) == ''", "invalid substring range. start: 2, end: 1"),
        ("'abc'.substring(4) == ''", "index out of range: 4"),
        (
            "quantity('9999999999999999999999999999999999999G').asInteger() == 1",
            "cannot convert value to integer",
        ),
        (
            "quantity('10Mo').isInteger()",
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        ("quantity('200K').isInteger()", "unable to parse quantity's suffix"),
        (
            "url('../relative-path').getScheme() == ''",
            'URL parse error during conversion from string: parse "../relative-path": '
            "invalid URI for request",
        ),
        ("['a', dyn(1)].join() == ''", "join: invalid input: 1"),
    ],
)
def test_library_errors(expr: str, msg: str) -> None:
    prog = compile_expression(expr, variables=SELF)
    with pytest.raises(CELError) as e:
        prog.evaluate({})
    assert e.value.message == msg


def test_matches_keeps_re2_meaning() -> None:
    # RE2's $ is the end of the text; \\d is ASCII; flags and classes RE2 has still work
    assert ev("self.matches('^[a-z]+$')", {"self": "abc\n"}) is False
    assert ev("self.matches('^\\\\d+$')", {"self": "\u0663"}) is False
    assert ev("self.matches('(?i)^ABC$')", {"self": "abc"}) is True
    assert ev("self.matches('^[[:alpha:]]+$') && !self.matches('^\\\\pN')", {"self": "abc"}) is True
    assert ev("self.find('[0-9]+$')", {"self": "a1\n2"}) == "2"


def test_library_types_are_checked() -> None:
    assert "found no matching overload for 'isLessThan' applied to 'kubernetes.Quantity.(int)'" in (
        compile_error("quantity('1').isLessThan(1)")
    )
    assert "found no matching overload for 'startsWith' applied to 'string.(int)'" in (
        compile_error("'a'.startsWith(1)")
    )


# ---- values typed by the schema ----


def test_to_cel_follows_the_structural_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "ratio": {"type": "number"},
            "count": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
            "every": {"type": "string", "format": "duration"},
            "raw": {"type": "string", "format": "byte"},
            "port": {"x-kubernetes-int-or-string": True},
            "foo-bar": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "number"}},
            "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    got = to_cel(
        {
            "ratio": 1,
            "count": 2,
            "at": "2024-05-06T07:08:09Z",
            "day": "2024-05-06",
            "every": "1h30m",
            "raw": "aGk=",
            "port": "8080",
            "foo-bar": "x",
            "namespace": "ns",
            "labels": {"a.b/c": 2},
            "blob": {"any": [1, "x"]},
        },
        schema,
    )
    assert got == {
        "ratio": 1.0,
        "count": 2,
        "at": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
        "day": dt.datetime(2024, 5, 6, tzinfo=dt.UTC),
        "every": dt.timedelta(hours=1, minutes=30),
        "raw": b"hi",
        "port": "8080",
        "foo__dash__bar": "x",
        "__namespace__": "ns",
        "labels": {"a.b/c": 2.0},
        "blob": {"any": [1, "x"]},
    }
    assert isinstance(got["ratio"], float)
    assert to_cel({"every": "2 days"}, schema)["every"] == dt.timedelta(days=2)


# ---- x-kubernetes-validations on writes ----


def obj_schema(props: dict[str, Any], *rules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "object", "properties": props, **extra}
    if rules:
        s["x-kubernetes-validations"] = list(rules)
    return s


INT = {"type": "integer"}
STR = {"type": "string"}

SCALE = obj_schema(
    {
        "spec": obj_schema(
            {"replicas": INT, "minReplicas": INT, "maxReplicas": INT},
            {
                "rule": "self.minReplicas <= self.replicas",
                "message": "replicas should be greater than or equal to minReplicas.",
            },
            {"rule": "self.replicas <= self.maxReplicas"},
        )
    }
)


def cr(spec: dict[str, Any], name: str = "x") -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Scale",
        "metadata": {"name": name},
        "spec": spec,
    }


def texts(errors: list[Any]) -> list[str]:
    return [str(e) for e in errors]


def test_failed_rules_read_like_upstream() -> None:
    errs = validate_rules(SCALE, cr({"replicas": 10, "minReplicas": 11, "maxReplicas": 5}), None)
    assert texts(errs) == [
        'spec: Invalid value: "object": replicas should be greater than or equal to minReplicas.',
        'spec: Invalid value: "object": failed rule: self.replicas <= self.maxReplicas',
    ]
    assert errs[0].type is FieldErrorType.INVALID
    assert (
        validate_rules(SCALE, cr({"replicas": 3, "minReplicas": 1, "maxReplicas": 5}), None) == []
    )


def test_root_rules_print_nil_path_and_see_only_name_of_metadata() -> None:
    schema = obj_schema({"spec": obj_schema({})}, {"rule": "self.metadata.name.startsWith('a')"})
    assert texts(validate_rules(schema, cr({}, name="bob"), None)) == [
        "<nil>: Invalid value: \"object\": failed rule: self.metadata.name.startsWith('a')"
    ]
    assert validate_rules(schema, cr({}, name="anna"), None) == []
    errs = compile_schema_rules(
        obj_schema({}, {"rule": "has(self.metadata.namespace)"}), "spec.validation.openAPIV3Schema"
    )
    assert "undefined field 'namespace'" in str(errs[0])


def test_message_expression_reason_and_field_path() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {"replicas": INT, "max": INT, "items": {"type": "array", "items": STR}},
                {
                    "rule": "self.replicas <= self.max",
                    "messageExpression": "'replicas ' + string(self.replicas)"
                    " + ' exceed ' + string(self.max)",
                },
                {
                    "rule": "self.replicas >= 0",
                    "reason": "FieldValueForbidden",
                    "fieldPath": ".replicas",
                    "message": "must not be negative",
                },
                {
                    "rule": "has(self.items)",
                    "reason": "FieldValueRequired",
                    "fieldPath": "['items']",
                    "message": "items are required",
                },
                {"rule": "self.max < 100", "reason": "FieldValueDuplicate", "message": "ignored"},
            )
        }
    )
    errs = validate_rules(schema, cr({"replicas": -7, "max": -10}), None)
    assert texts(errs) == [
        'spec: Invalid value: "object": replicas -7 exceed -10',
        "spec.replicas: Forbidden: must not be negative",
        "spec.items: Required value: items are required",
    ]
    errs = validate_rules(schema, cr({"replicas": 1, "max": 100, "items": []}), None)
    assert texts(errs) == ['spec: Duplicate value: "object"']
    assert [e.type.reason for e in errs] == ["FieldValueDuplicate"]


def test_message_expression_falls_back_to_message() -> None:
    base = {"rule": "self.a > 1", "message": "message not messageExpression"}
    for mexpr in [
        "'str1 ' + ['a', 'b'][4]",
        "'with \\na newline'",
        "'   '",
        "'a' * 1" if False else "'x'.size() > 0",
    ]:
        schema = obj_schema({"spec": obj_schema({"a": INT}, {**base, "messageExpression": mexpr})})
        assert texts(validate_rules(schema, cr({"a": 0}), None)) == [
            'spec: Invalid value: "object": message not messageExpression'
        ], mexpr
    long = {**base, "messageExpression": "'" + "a" * 5121 + "'"}
    schema = obj_schema({"spec": obj_schema({"a": INT}, long)})
    assert "message not messageExpression" in texts(validate_rules(schema, cr({"a": 0}), None))[0]


def test_runtime_error_becomes_invalid_with_upstream_text() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {"a": INT, "ios": {"x-kubernetes-int-or-string": True}},
                {"rule": "self.a > 0"},
                {"rule": "self.ios + 1 > 0", "message": "ios must be small"},
            )
        }
    )
    errs = validate_rules(schema, cr({"ios": "50%"}), None)
    assert texts(errs) == [
        'spec: Invalid value: "object": no such key: a evaluating rule: self.a > 0',
        "spec: Invalid value: \"object\": 'no such overload': call arguments did not match a "
        "supported operator, function or macro signature for rule: ios must be small",
    ]


def test_rules_on_scalars_maps_and_lists() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "name": {
                        "type": "string",
                        "maxLength": 5,
                        "x-kubernetes-validations": [{"rule": "self.size() <= 3"}],
                    },
                    "labels": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "string",
                            "x-kubernetes-validations": [
                                {"rule": "self != 'bad'", "message": "no bad values"}
                            ],
                        },
                    },
                    "ports": {
                        "type": "array",
                        "items": {
                            "type": "integer",
                            "x-kubernetes-validations": [{"rule": "self > 0"}],
                        },
                    },
                    "maybe": {
                        "type": "string",
                        "nullable": True,
                        "x-kubernetes-validations": [{"rule": "self == 'x'"}],
                    },
                }
            )
        }
    )
    errs = validate_rules(
        schema,
        cr(
            {
                "name": "日本語です",
                "labels": {"a": "ok", "b": "bad"},
                "ports": [1, 0, 2],
                "maybe": None,
            }
        ),
        None,
    )
    assert texts(errs) == [
        'spec.name: Invalid value: "string": failed rule: self.size() <= 3',
        'spec.labels[b]: Invalid value: "string": no bad values',
        'spec.ports[1]: Invalid value: "integer": failed rule: self > 0',
    ]


def test_escaped_property_names() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {"foo-bar": INT, "namespace": STR},
                {"rule": "self.foo__dash__bar > 1 && self.__namespace__ == 'n'"},
            )
        }
    )
    assert validate_rules(schema, cr({"foo-bar": 2, "namespace": "n"}), None) == []
    assert len(validate_rules(schema, cr({"foo-bar": 1, "namespace": "n"}), None)) == 1


def test_timestamps_and_durations_from_formats() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "start": {"type": "string", "format": "date-time"},
                    "end": {"type": "string", "format": "date-time"},
                    "every": {"type": "string", "format": "duration"},
                },
                {"rule": "self.start < self.end", "message": "start must be before end"},
                {
                    "rule": "self.every >= duration('1m')",
                    "message": "every must be at least a minute",
                },
            )
        }
    )
    errs = validate_rules(
        schema,
        cr({"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z", "every": "30s"}),
        None,
    )
    assert texts(errs) == [
        'spec: Invalid value: "object": start must be before end',
        'spec: Invalid value: "object": every must be at least a minute',
    ]


# ---- transition rules ----

IMMUTABLE = {"rule": "self == oldSelf", "message": "Value is immutable"}


def test_transition_rules_need_an_old_value() -> None:
    schema = obj_schema(
        {"spec": obj_schema({"a": {"type": "string", "x-kubernetes-validations": [IMMUTABLE]}})}
    )
    assert validate_rules(schema, cr({"a": "x"}), None) == []  # create: not run
    assert validate_rules(schema, cr({"a": "x"}), cr({"a": "x"})) == []
    assert texts(validate_rules(schema, cr({"a": "y"}), cr({"a": "x"}))) == [
        'spec.a: Invalid value: "string": Value is immutable'
    ]
    assert validate_rules(schema, cr({"a": "y"}), cr({})) == []  # no old value there


def test_transition_rules_correlate_map_keys_and_map_list_items() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "byName": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "integer",
                            "x-kubernetes-validations": [
                                {"rule": "self >= oldSelf", "message": "may only grow"}
                            ],
                        },
                    },
                    "entries": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": obj_schema(
                            {"name": STR, "size": INT},
                            {"rule": "self.size >= oldSelf.size", "message": "size may only grow"},
                        ),
                    },
                }
            )
        }
    )
    old = cr(
        {
            "byName": {"a": 5, "b": 1},
            "entries": [{"name": "x", "size": 3}, {"name": "y", "size": 9}],
        }
    )
    new = cr(
        {
            "byName": {"a": 4, "c": 0},
            "entries": [
                {"name": "y", "size": 1},
                {"name": "z", "size": 0},
                {"name": "x", "size": 4},
            ],
        }
    )
    assert texts(validate_rules(schema, new, old)) == [
        'spec.byName[a]: Invalid value: "integer": may only grow',
        'spec.entries[0]: Invalid value: "object": size may only grow',
    ]


def test_optional_old_self_runs_on_create_too() -> None:
    rule = {
        "rule": "oldSelf.hasValue() ? self >= oldSelf.value() : self > 10",
        "optionalOldSelf": True,
        "message": "bad",
    }
    schema = obj_schema(
        {"spec": obj_schema({"a": {"type": "integer", "x-kubernetes-validations": [rule]}})}
    )
    assert texts(validate_rules(schema, cr({"a": 5}), None)) == [
        'spec.a: Invalid value: "integer": bad'
    ]
    assert validate_rules(schema, cr({"a": 5}), cr({"a": 4})) == []
    assert len(validate_rules(schema, cr({"a": 3}), cr({"a": 4}))) == 1


def test_unchanged_values_ratchet_to_warnings() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "a": {
                        "type": "string",
                        "x-kubernetes-validations": [
                            {"rule": "self.size() < 3", "message": "too long"}
                        ],
                    },
                    "b": INT,
                }
            )
        }
    )
    old = cr({"a": "long", "b": 1})
    warnings: list[str] = []
    assert validate_rules(schema, cr({"a": "long", "b": 2}), old, warnings=warnings) == []
    assert warnings == ['spec.a: Invalid value: "string": too long']
    assert len(validate_rules(schema, cr({"a": "longer", "b": 2}), old)) == 1


def test_all_of_rules_run_on_the_same_value() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {"key": STR, "key2": STR},
                allOf=[
                    {
                        "x-kubernetes-validations": [
                            {
                                "rule": "self.key == 'value' && self.key2 == 'value2'",
                                "message": "key must be 'value' and key2 must be 'value2'",
                            }
                        ]
                    },
                    {
                        "x-kubernetes-validations": [
                            {
                                "rule": "self.key != self.key2",
                                "message": "key must not be equal to key2",
                            }
                        ]
                    },
                ],
            )
        }
    )
    assert texts(validate_rules(schema, cr({"key": "value", "key2": "value"}), None)) == [
        "spec: Invalid value: \"object\": key must be 'value' and key2 must be 'value2'",
        'spec: Invalid value: "object": key must not be equal to key2',
    ]


# ---- cost ----


def test_per_call_cost_limit_stops_validation() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {"xs": {"type": "array", "items": INT}},
                {"rule": "self.xs.all(x, self.xs.all(y, x + y >= 0))"},
                {"rule": "false"},
            )
        }
    )
    errs = validate_rules(schema, cr({"xs": list(range(1500))}), None)
    assert texts(errs) == [
        "spec: Invalid value: \"object\": 'operation cancelled: actual cost limit exceeded': no "
        "further validation rules will be run due to call cost exceeds limit for rule: "
        "self.xs.all(x, self.xs.all(y, x + y >= 0))"
    ]
    assert validate_rules(schema, cr({"xs": list(range(10))}), None) != errs
    prog = compile_expression("self.all(x, self.all(y, x == y))", variables=SELF)
    big = {"self": list(range(2000))}
    assert prog.cost(big) > PER_CALL_LIMIT
    with pytest.raises(CELError, match="operation cancelled: actual cost limit exceeded"):
        prog.evaluate(big)


def test_object_cost_budget_stops_validation() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "xs": {
                        "type": "array",
                        "items": {
                            "type": "integer",
                            "x-kubernetes-validations": [{"rule": "self >= 0"}],
                        },
                    }
                }
            )
        }
    )
    v = SchemaValidator(schema)
    errs = v.validate(cr({"xs": [1, 2, 3, 4, 5]}), None, budget=8)
    assert texts(errs) == [
        'spec.xs[4]: Invalid value: "integer": validation failed due to running out of cost '
        "budget, "
        "no further validation rules will be run"
    ]


# ---- CRD creation ----

AT = "spec.versions[0].schema.openAPIV3Schema"


def crd_errors(spec_rules: list[dict[str, Any]], **props: Any) -> list[str]:
    schema = obj_schema({"spec": obj_schema({"n": INT, **props}, *spec_rules)})
    return texts(compile_schema_rules(schema, AT))


def test_compile_error_path_and_detail_are_upstreams() -> None:
    assert crd_errors([{"rule": "self.foo > 0"}]) == [
        f"{AT}.properties[spec].x-kubernetes-validations[0].rule: Invalid value: "
        'apiextensions.ValidationRule{Rule:"self.foo > 0", Message:"", MessageExpression:"", '
        'Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", '
        "OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:5: undefined "
        "field 'foo'\n | self.foo > 0\n | ....^"
    ]


def test_rules_must_be_bool_and_messages_strings() -> None:
    errs = crd_errors(
        [
            {"rule": "self.n"},
            {"rule": "self.n > 0", "messageExpression": "self.n"},
            {"rule": "self.n > 0", "messageExpression": "self.x"},
            {"rule": "self.n == 'abc'"},
        ]
    )
    assert [e.split(": ", 1)[0] for e in errs] == [
        f"{AT}.properties[spec].x-kubernetes-validations[0].rule",
        f"{AT}.properties[spec].x-kubernetes-validations[1].messageExpression",
        f"{AT}.properties[spec].x-kubernetes-validations[2].messageExpression",
        f"{AT}.properties[spec].x-kubernetes-validations[3].rule",
    ]
    assert errs[0].endswith("}: cel expression must evaluate to a bool")
    assert errs[1].endswith("}: messageExpression must evaluate to a string")
    assert (
        "}: messageExpression compilation failed: ERROR: <input>:1:5: undefined field 'x'"
        in errs[2]
    )
    assert "found no matching overload for '_==_' applied to '(int, string)'" in errs[3]


def test_old_self_is_refused_where_values_cannot_be_correlated() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "list": {
                        "type": "array",
                        "items": {"type": "string", "x-kubernetes-validations": [IMMUTABLE]},
                    },
                    "set": {
                        "type": "array",
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string", "x-kubernetes-validations": [IMMUTABLE]},
                    },
                    "map": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["k"],
                        "items": obj_schema({"k": STR}, IMMUTABLE),
                    },
                    "whole": {
                        "type": "array",
                        "items": STR,
                        "x-kubernetes-validations": [IMMUTABLE],
                    },
                }
            )
        }
    )
    assert texts(compile_schema_rules(schema, AT)) == [
        f"{AT}.properties[spec].properties[{name}].items.x-kubernetes-validations[0].rule: "
        'Invalid value: "self == oldSelf": oldSelf cannot be used on the uncorrelatable portion '
        f"of the schema within {AT}.properties[spec].properties[{name}]"
        for name in ("list", "set")
    ]


def test_rule_fields_are_checked() -> None:
    errs = crd_errors(
        [
            {"rule": "  "},
            {"rule": "self.n > 0", "message": "   "},
            {"rule": "self.n > 0", "message": "a\nb"},
            {"rule": "self.n > 0 &&\nself.n < 5"},
            {"rule": "self.n > 0", "reason": "Bad"},
            {"rule": "self.n > 0", "fieldPath": ".nope"},
            {"rule": "self.n > 0", "optionalOldSelf": True},
        ]
    )
    p = f"{AT}.properties[spec].x-kubernetes-validations"
    assert errs == [
        f"{p}[0].rule: Required value: rule is not specified",
        f'{p}[1].message: Invalid value: "   ": message must be non-empty if specified',
        f'{p}[2].message: Invalid value: "a\\nb": message must not contain line breaks',
        f"{p}[3].message: Required value: message must be specified if rule contains line breaks",
        f'{p}[4].reason: Unsupported value: "Bad": supported values: "FieldValueDuplicate", '
        '"FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"',
        f'{p}[5].fieldPath: Invalid value: ".nope": fieldPath must be a valid path',
    ]
    assert crd_errors([{"rule": "self.n > 0", "optionalOldSelf": True}]) == [
        f"{p}[0].optionalOldSelf: Invalid value: true: "
        "may not be set if oldSelf is not used in rule"
    ]


def test_valid_crd_rules_pass() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "replicas": INT,
                    "selector": obj_schema(
                        {"matchLabels": {"type": "object", "additionalProperties": STR}}
                    ),
                    "image": STR,
                    "memory": {"x-kubernetes-int-or-string": True},
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["port"],
                        "items": obj_schema({"port": INT, "name": STR}, IMMUTABLE),
                    },
                },
                {"rule": "self.replicas >= 0 && self.replicas <= 100"},
                {"rule": "!has(self.selector) || self.selector.matchLabels.all(k, k.size() <= 63)"},
                {
                    "rule": "self.image.matches('^[a-z0-9./:-]+$')"
                    " && url('https://' + self.image).getHost() != ''"
                },
                {
                    "rule": "type(self.memory) == string"
                    " ? quantity(self.memory).isLessThan(quantity('1Gi')) : self.memory < 1024",
                    "messageExpression": "'memory ' + string(self.memory) + ' too big'",
                },
                {"rule": "self.ports.map(p, p.port).isSorted()", "fieldPath": ".ports"},
                {"rule": "oldSelf.replicas <= self.replicas", "message": "cannot scale down"},
            ),
            "status": obj_schema(
                {"phase": {"type": "string", "enum": ["A", "B"]}},
                {"rule": "self.phase in ['A', 'B']"},
            ),
        },
        {"rule": "self.metadata.name.size() < 20 && self.kind == 'Scale'"},
    )
    assert compile_schema_rules(schema, AT) == []
    good = cr(
        {
            "replicas": 2,
            "selector": {"matchLabels": {"a": "b"}},
            "image": "nginx:1",
            "memory": "512Mi",
            "ports": [{"port": 80}, {"port": 443}],
        }
    )
    assert validate_rules(schema, good, None) == []
    worse = cr({**good["spec"], "replicas": 1, "memory": "2Gi"})
    assert texts(validate_rules(schema, worse, good)) == [
        'spec: Invalid value: "object": memory 2Gi too big',
        'spec: Invalid value: "object": cannot scale down',
    ]


# ---- real rules: Gateway API (gateway.networking.k8s.io v1.6 CRDs, verbatim) ----

LISTENER_RULES = [
    {
        "message": "Listener name must be unique within the Gateway",
        "rule": "self.all(l1, self.exists_one(l2, l1.name == l2.name))",
    },
    {
        "message": "tls mode must be set for protocol TLS",
        "rule": "self.all(l, (l.protocol == 'TLS' ? has(l.tls) && has(l.tls.mode) && "
        "l.tls.mode != '' : true))",
    },
]
GATEWAY = obj_schema(
    {
        "spec": obj_schema(
            {
                "listeners": {
                    "type": "array",
                    "maxItems": 64,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "x-kubernetes-validations": LISTENER_RULES,
                    "items": obj_schema(
                        {
                            "name": STR,
                            "port": INT,
                            "protocol": STR,
                            "tls": obj_schema({"mode": STR}),
                        }
                    ),
                },
                "hostnames": {
                    "type": "array",
                    "items": STR,
                    "x-kubernetes-validations": [
                        {
                            "message": "Hostnames cannot contain an IP",
                            "rule": "self.all(h, !isIP(h))",
                        }
                    ],
                },
                "timeouts": obj_schema(
                    {"request": STR, "backendRequest": STR},
                    {
                        "message": "backendRequest timeout cannot be longer than request timeout",
                        "rule": "!(has(self.request) && has(self.backendRequest) && "
                        "duration(self.request) != duration('0s') && "
                        "duration(self.backendRequest) > duration(self.request))",
                    },
                ),
            }
        )
    }
)


def test_gateway_api_rules() -> None:
    assert compile_schema_rules(GATEWAY, AT) == []
    good = cr(
        {
            "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP"},
                {"name": "tls", "port": 443, "protocol": "TLS", "tls": {"mode": "Passthrough"}},
            ],
            "hostnames": ["example.com"],
            "timeouts": {"request": "10s", "backendRequest": "2s"},
        }
    )
    assert validate_rules(GATEWAY, good, None) == []
    bad = cr(
        {
            "listeners": [
                {"name": "a", "port": 80, "protocol": "HTTP"},
                {"name": "a", "port": 443, "protocol": "TLS"},
            ],
            "hostnames": ["example.com", "10.0.0.1"],
            "timeouts": {"request": "1s", "backendRequest": "1m"},
        }
    )
    assert texts(validate_rules(GATEWAY, bad, None)) == [
        'spec.listeners: Invalid value: "array": Listener name must be unique within the Gateway',
        'spec.listeners: Invalid value: "array": tls mode must be set for protocol TLS',
        'spec.hostnames: Invalid value: "array": Hostnames cannot contain an IP',
        'spec.timeouts: Invalid value: "object": backendRequest timeout cannot be longer than '
        "request timeout",
    ]


# ---- more of upstream's typing ----


def test_policy_style_variables_are_dynamic() -> None:
    names = ["object", "oldObject", "request"]
    prog = compile_expression(
        "object.spec.replicas <= 5 && request.operation == 'CREATE'", variables=names
    )
    act = {
        "object": {"spec": {"replicas": 3}},
        "oldObject": None,
        "request": {"operation": "CREATE"},
    }
    assert prog.evaluate(act) is True
    assert "undeclared reference to 'params'" in compile_error("params.max > 1", names)


def test_one_activation_serves_several_programs() -> None:
    act = Activation({"self": {"name": "Web", "replicas": 3}})
    a = compile_expression("self.name.lowerAscii() == 'web'", variables=SELF)
    b = compile_expression("self.replicas.size() == 1", variables=SELF)
    c = compile_expression("self.name.size() == 3", variables=SELF)
    assert [a.evaluate(act), c.evaluate(act)] == [True, True]
    with pytest.raises(CELError):  # size() of an int: the checker cannot see it is one
        b.evaluate(act)


def test_int_or_string_is_dyn_and_unknown_fields_are_not_selectable() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "port": {"x-kubernetes-int-or-string": True},
                    "blob": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "anything": {"x-kubernetes-preserve-unknown-fields": True},
                },
                {"rule": "type(self.port) == int ? self.port > 0 : self.port.endsWith('%')"},
            )
        }
    )
    assert compile_schema_rules(schema, AT) == []
    assert validate_rules(schema, cr({"port": "50%"}), None) == []
    assert len(validate_rules(schema, cr({"port": 0}), None)) == 1
    # upstream's SchemaDeclType: unknown fields are not typed, so rules cannot reach them
    for rule, field in [("has(self.blob.x)", "x"), ("has(self.anything)", "anything")]:
        s = obj_schema(
            {"spec": obj_schema(schema["properties"]["spec"]["properties"], {"rule": rule})}
        )
        assert f"undefined field '{field}'" in texts(compile_schema_rules(s, AT))[0]


def test_embedded_resources_expose_type_and_object_meta() -> None:
    schema = obj_schema(
        {
            "spec": obj_schema(
                {
                    "template": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "x-kubernetes-preserve-unknown-fields": True,
                        "x-kubernetes-validations": [
                            {"rule": "self.kind == 'Pod' && self.metadata.name.startsWith('t-')"}
                        ],
                    }
                }
            )
        }
    )
    assert compile_schema_rules(schema, AT) == []
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}
    assert texts(validate_rules(schema, cr({"template": pod}), None)) == [
        "spec.template: Invalid value: \"object\": failed rule: self.kind == 'Pod' && "
        "self.metadata.name.startsWith('t-')"
    ]


def test_message_expression_compile_errors() -> None:
    errs = crd_errors([{"rule": "self.n > 0", "messageExpression": "'n is ' + self.n"}])
    assert errs[0].startswith(
        f"{AT}.properties[spec].x-kubernetes-validations[0].messageExpression: Invalid value: "
        'apiextensions.ValidationRule{Rule:"self.n > 0", Message:"", '
        "MessageExpression:\"'n is ' + self.n\", "
    )
    assert errs[0].endswith(
        "}: messageExpression compilation failed: ERROR: <input>:1:9: found no matching "
        "overload for '_+_' applied to '(string, int)'\n | 'n is ' + self.n\n | ........^"
    )
