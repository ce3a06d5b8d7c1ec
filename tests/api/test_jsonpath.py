"""kubectl's JSONPath: what a template selects and prints, and upstream's parse errors.

Expected outputs are those of client-go's own jsonpath tests (v1.32), so
``kubectl get -o jsonpath`` and CRD printer columns read paths as upstream does.
"""

from __future__ import annotations

from typing import Any

import pytest

from pyk8s.api.gofmt import go_float, go_json, go_quote
from pyk8s.api.jsonpath import JSONPathError, parse, parse_template

STORE: dict[str, Any] = {
    "Name": "jsonpath",
    "Book": [
        {"Category": "reference", "Author": "Nigel Rees", "Title": "Sayings", "Price": 8.95},
        {"Category": "fiction", "Author": "Evelyn Waugh", "Title": "Sword", "Price": 12.99},
        {"Category": "fiction", "Author": "Herman Melville", "Title": "Moby Dick", "Price": 8.99},
    ],
    "Bicycle": [
        {"Color": "red", "Price": 19.95, "IsNew": True},
        {"Color": "green", "Price": 20.01, "IsNew": False},
    ],
    "Labels": {"engieer": 10, "web/html": 15, "k8s-app": 20},
    "Employees": {"jason": "manager", "dan": "clerk"},
}

NODES: dict[str, Any] = {
    "kind": "List",
    "items": [
        {
            "kind": "None",
            "metadata": {"name": "127.0.0.1", "labels": {"kubernetes.io/hostname": "127.0.0.1"}},
            "status": {
                "capacity": {"cpu": "4"},
                "ready": True,
                "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}],
            },
        },
        {
            "kind": "None",
            "metadata": {"name": "127.0.0.2", "labels": {"kubernetes.io/hostname": "127.0.0.2"}},
            "status": {
                "capacity": {"cpu": "8"},
                "ready": False,
                "addresses": [
                    {"type": "LegacyHostIP", "address": "127.0.0.2"},
                    {"type": "another", "address": "127.0.0.3"},
                ],
            },
        },
    ],
    "users": [
        {"name": "myself", "user": {}},
        {"name": "e2e", "user": {"username": "admin", "password": "secret"}},
    ],
}


@pytest.mark.parametrize(
    ("template", "data", "expect"),
    [
        ("hello jsonpath", None, "hello jsonpath"),
        ("{..}", [1, 2, 3], "[1,2,3]"),
        ("{[?(@<5)]}", [2, 6, 3, 7], "2 3"),
        ('{"{"}', None, "{"),
        ("{[1,3,4]}", [0, 1, 2, 3, 4], "1 3 4"),
        ("{[0:2]}", ["Monday", "Tudesday"], "Monday Tudesday"),
        ("hello {.Name}", STORE, "hello jsonpath"),
        ("{$.Labels.web/html}", STORE, "15"),
        ("{$.Employees.jason}", STORE, "manager"),
        ("{.Labels.k8s-app}", STORE, "20"),
        ("{.Bicycle[*].Color}", STORE, "red green"),
        ("{.Book[*].Author}", STORE, "Nigel Rees Evelyn Waugh Herman Melville"),
        (
            '{range .Bicycle[*]}{ "{" }{ @.* }{ "} " }{end}',
            STORE,
            "{red 19.95 true} {green 20.01 false} ",
        ),
        ("{..Price}", STORE, "8.95 12.99 8.99 19.95 20.01"),
        ("{...Price}", STORE, "8.95 12.99 8.99 19.95 20.01"),
        (
            "{.Bicycle}",
            STORE,
            '[{"Color":"red","IsNew":true,"Price":19.95},'
            '{"Color":"green","IsNew":false,"Price":20.01}]',
        ),
        (
            "{.Book[-1:]}",
            STORE,
            '{"Author":"Herman Melville","Category":"fiction","Price":8.99,"Title":"Moby Dick"}',
        ),
        (
            "{..Book[2]}",
            STORE,
            '{"Author":"Herman Melville","Category":"fiction","Price":8.99,"Title":"Moby Dick"}',
        ),
        ("{.Bicycle[?(@.IsNew==true)].Color}", STORE, "red"),
        ("{.hello}", STORE, ""),
        ("before-{.hello}after", STORE, "before-after"),
        ("{range .items[*]}{.metadata.name}, {end}{.kind}", NODES, "127.0.0.1, 127.0.0.2, List"),
        ('{range .items[*]}{.metadata.name}{"\\t"}{end}', NODES, "127.0.0.1\t127.0.0.2\t"),
        (
            "{.items[*].status.addresses[*].address}",
            NODES,
            "127.0.0.1 127.0.0.2 127.0.0.3",
        ),
        (
            "{range .items[*]}{range .status.addresses[*]}{.address}, {end}{end}",
            NODES,
            "127.0.0.1, 127.0.0.2, 127.0.0.3, ",
        ),
        ("{.items[*].metadata.name}", NODES, "127.0.0.1 127.0.0.2"),
        (
            "{.items[*]['metadata.name', 'status.capacity']}",
            NODES,
            '127.0.0.1 127.0.0.2 {"cpu":"4"} {"cpu":"8"}',
        ),
        (
            "{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}",
            NODES,
            '[127.0.0.1, {"cpu":"4"}] [127.0.0.2, {"cpu":"8"}] ',
        ),
        ('{.users[?(@.name=="e2e")].user.password}', NODES, "secret"),
        ("{.items[0].metadata.labels.kubernetes\\.io/hostname}", NODES, "127.0.0.1"),
        (
            '{.items[?(@.metadata.labels.kubernetes\\.io/hostname=="127.0.0.1")].kind}',
            NODES,
            "None",
        ),
        ("{.items[?(@..ready==true)].metadata.name}", NODES, "127.0.0.1"),
        ("{range .items[*]}{.metadata.name}{end}", {"items": []}, ""),
    ],
)
def test_templates_print_as_kubectl(template: str, data: Any, expect: str) -> None:
    assert parse_template(template).execute(data) == expect


POINTS = [
    {"id": "i1", "x": 4, "y": -5},
    {"id": "i2", "x": -2, "y": -5, "z": 1},
    {"id": "i3", "x": 8, "y": 3},
    {"id": "i4", "x": -6, "y": -1},
    {"id": "i5", "x": 0, "y": 2, "z": 1},
    {"id": "i6", "x": 1, "y": 4},
    {"id": "i7", "x": None, "y": 4},
]


def test_filters_exists_and_nulls() -> None:
    assert parse("{[?(@.z)].id}").execute(POINTS) == "i2 i5"
    assert parse("{[0]['id']}").execute(POINTS) == "i1"
    assert parse("{[-1]['x']}").execute(POINTS) == "null"
    assert parse("[?(@.x>0)].id").find(POINTS[:-1]) == ["i1", "i3", "i6"]
    with pytest.raises(JSONPathError, match=r"^invalid type for comparison$"):
        parse("[?(@.x>0)].id").find(POINTS)  # a null compares with nothing
    assert parse("[?(@.y<=-5)].id").find(POINTS) == ["i1", "i2"]
    assert parse("[?(@.id!='i1')].id").find(POINTS)[:2] == ["i2", "i3"]


def test_find_selects_values_from_a_bare_path() -> None:
    obj = {
        "metadata": {"name": "a", "annotations": {"example.com/x.y": "v"}},
        "spec": {"list": [1, 2, 3]},
        "status": {
            "conditions": [
                {"type": "Available", "status": "False"},
                {"type": "Ready", "status": "True"},
            ]
        },
    }
    assert parse(".metadata.name").find(obj) == ["a"]
    assert parse("{.metadata.name}").find(obj) == ["a"]
    # upstream reads ['a.b'] as .a.b; a dotted key needs escaped dots
    assert parse(".metadata.annotations['example.com/x.y']").find(obj) == []
    assert parse(".metadata.annotations.example\\.com/x\\.y").find(obj) == ["v"]
    assert parse(".metadata['annotations']").find(obj) == [obj["metadata"]["annotations"]]
    assert parse(".spec.list[0]").find(obj) == [1]
    assert parse(".spec.list[-1]").find(obj) == [3]
    assert parse(".spec.list[*]").find(obj) == [1, 2, 3]
    assert parse(".spec.list[0:3:2]").find(obj) == [1, 3]
    assert parse(".spec.list").find(obj) == [[1, 2, 3]]
    assert parse('.status.conditions[?(@.type=="Ready")].status').find(obj) == ["True"]
    assert parse("..status").find(obj) == [obj["status"], "False", "True"]
    assert parse(".spec.missing").find(obj) == []
    assert parse(".spec.missing.deeper").find(obj) == []


def test_missing_keys_are_errors_unless_allowed() -> None:
    with pytest.raises(JSONPathError, match=r"^hello is not found$"):
        parse("{.hello}", allow_missing_keys=False).find(STORE)
    assert parse("{.hello}").find(STORE) == []


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{hello}", "unrecognized identifier hello"),
        ("{.Labels[0]}", "map[string]interface {} is not array or slice"),
        ("{.Book[?(@.Price<>10)]}", "unrecognized filter operator <>"),
        ("{range .Labels.*}{@}{end}{end}", "not in range, nothing to end"),
        ("{.Book[5]}", "array index out of bounds: index 5, length 3"),
        ("{.Book[::0]}", "step must be > 0"),
        ("{.Book[?(@.Price==8)]}", "incompatible types for comparison"),
        ("{.Bicycle[?(@.IsNew<true)]}", "invalid type for comparison"),
        ("{.Name[?(@.x)]}", "jsonpath is not array or slice and cannot be filtered"),
    ],
)
def test_evaluation_errors(template: str, message: str) -> None:
    with pytest.raises(JSONPathError) as e:
        parse_template(template, allow_missing_keys=False).execute(STORE)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{.hello", "unclosed action"),
        ("{*}", "unrecognized character in action: U+002A '*'"),
        ("{+12.3.0}", "cannot parse number +12.3.0"),
        ("{[1}", "unterminated array"),
        ("{[?(.price]}", "unterminated filter"),
        ("{........}", "invalid multiple recursive descent"),
        ("{............................................................Price}", None),
        ("{[a]}", "invalid array index a"),
        ("{.a[?(@.b==1)}", "unclosed array expect ]"),
        ("{'abc}", "unterminated quoted string"),
        ("{'a\\qb'}", "unquote string 'a\\qb' error invalid syntax"),
        (".spec[x", "unterminated array"),
    ],
)
def test_parse_errors_carry_upstreams_message(template: str, message: str | None) -> None:
    with pytest.raises(ValueError) as e:
        parse(template)
    if message is not None:
        assert str(e.value) == message


def test_escapes_in_quoted_strings() -> None:
    assert parse_template('{"a\\tb"}').execute(None) == "a\tb"
    assert parse_template("{'it\\'s'}").execute(None) == "it's"
    assert parse_template('{"\\u00e9\\x41"}').execute(None) == "éA"


def test_go_number_and_json_formatting() -> None:
    assert [go_float(f) for f in (1.0, 2.5, 1e6, 123456.0, 1e-4, 1e-5, 1e21)] == [
        "1",
        "2.5",
        "1e+06",
        "123456",
        "0.0001",
        "1e-05",
        "1e+21",
    ]
    assert go_json({"b": [1, 2.0, 1e-7, 1e21], "a": "<&>", "c": None}) == (
        '{"a":"\\u003c\\u0026\\u003e","b":[1,2,1e-7,1e+21],"c":null}'
    )
    assert go_quote('say "hi"\n') == '"say \\"hi\\"\\n"'


def test_field_chain_marks_plain_paths() -> None:
    assert parse(".spec.replicas").field_chain == ("spec", "replicas")
    assert parse(".metadata.labels.app\\.kubernetes\\.io/name").field_chain == (
        "metadata",
        "labels",
        "app.kubernetes.io/name",
    )
    for path in (".spec.list[0]", "..name", "x{.a}", "{.a}{.b}", '.a[?(@.b=="c")]'):
        assert parse(path).field_chain is None, path
