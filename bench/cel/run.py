"""CEL benchmark: the two maintained PyPI CEL packages on upstream's example rules.

Why: CRD ``x-kubernetes-validations`` rules run on every write of a custom resource
(and ValidatingAdmissionPolicies on every admitted request), so the evaluator sits on the
API server's write path. This script measures, for each package that is installed,
compile and evaluate time of the rules upstream's documentation uses as examples, plus two
rules that need an extension function registered from Python (``lowerAscii``, ``sum``),
and -- as the baseline measured in the same run -- a plain Python ``dict`` lookup that
does the work of the first rule. It also times ``pyk8s.api.cel``, the chosen package behind
our layer: a cold compile (evaluator parse, our parse and checks, evaluator compile), a
compile answered by the LRU cache, and evaluate with the cost estimate and our functions.

* ``common-expression-language`` (module ``cel``): Rust bindings (cel-rust via PyO3).
* ``cel-python`` (module ``celpy``): pure Python, a lark parser and a tree walker.

Usage: python3 bench/cel/run.py [--repeat 2000]
Prints one markdown table (microseconds). A measurement, never a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

#: (rule, activation) -- upstream's documented examples for x-kubernetes-validations
RULES: list[tuple[str, dict[str, Any]]] = [
    ("self.replicas <= self.maxReplicas", {"self": {"replicas": 3, "maxReplicas": 5}}),
    ("self.minReplicas <= self.replicas", {"self": {"replicas": 3, "minReplicas": 1}}),
    ("self.all(x, x.startsWith('a'))", {"self": ["ab", "ac", "ad", "ae"]}),
    ("has(self.foo) ? self.foo > 0 : true", {"self": {"foo": 3}}),
    ("self.name.matches('^[a-z]+$')", {"self": {"name": "abcdef"}}),
    ("oldSelf == self", {"self": {"a": 1, "b": "x"}, "oldSelf": {"a": 1, "b": "x"}}),
    ("self.size() <= 10", {"self": ["a", "b", "c"]}),
    ("self.map(x, x * 2).exists(y, y > 10)", {"self": [1, 2, 3, 6]}),
    (
        "self.metadata.name.startsWith(self.prefix) && self.metadata.name.endsWith('-x')",
        {"self": {"metadata": {"name": "web-x"}, "prefix": "web"}},
    ),
    ("self.name.contains('b') && size(self.name) < 64", {"self": {"name": "abc"}}),
    # these need a function registered from Python (k8s strings / lists libraries)
    ("self.name.lowerAscii() == 'abc'", {"self": {"name": "ABC"}}),
    ("self.sum() < 100", {"self": [1, 2, 3, 4]}),
]


def _lower_ascii(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] * 1e6


def _time(fn: Callable[[], object], repeat: int) -> list[float]:
    out: list[float] = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


Row = tuple[str, str, list[float], list[float], str]


def bench_cel_rust(repeat: int) -> list[Row]:
    import cel

    ctx_funcs = {"lowerAscii": _lower_ascii, "sum": lambda xs: sum(xs)}
    rows: list[Row] = []
    for rule, act in RULES:
        comp = _time(lambda rule=rule: cel.compile(rule), max(1, repeat // 4))
        prog = cel.compile(rule)
        ctx = cel.Context(variables=act, functions=ctx_funcs)
        result = prog.execute(ctx)
        ev = _time(lambda prog=prog, act=act: prog.execute(cel.Context(act, ctx_funcs)), repeat)
        rows.append(("common-expression-language", rule, comp, ev, repr(result)))
    return rows


def bench_celpy(repeat: int) -> list[Row]:
    import celpy

    env = celpy.Environment()
    funcs: dict[str, Any] = {
        "lowerAscii": lambda s: celpy.celtypes.StringType(_lower_ascii(s)),
        "sum": lambda xs: celpy.celtypes.IntType(sum(xs)),
    }
    rows: list[Row] = []
    n = max(1, repeat // 20)  # celpy is slow: fewer runs
    for rule, act in RULES:
        comp = _time(lambda rule=rule: env.program(env.compile(rule), functions=funcs), n)
        prog = env.program(env.compile(rule), functions=funcs)

        def run(prog: Any = prog, act: dict[str, Any] = act) -> object:
            return prog.evaluate({k: celpy.json_to_cel(v) for k, v in act.items()})

        try:
            result = repr(run())
            ev = _time(run, n)
        except Exception as e:  # report, keep measuring the others
            result, ev = f"error: {e}"[:40], [float("nan")]
        rows.append(("cel-python", rule, comp, ev, result))
    return rows


def bench_pyk8s(repeat: int) -> list[Row]:
    from pyk8s.api import cel as k8scel
    from pyk8s.api.cel._program import _cached  # the LRU; its __wrapped__ compiles cold

    rows: list[Row] = []
    for rule, act in RULES:
        names = tuple(sorted(act))
        comp = _time(lambda rule=rule, names=names: _cached.__wrapped__(rule, names), repeat // 4)
        prog = k8scel.compile_expression(rule, variables=names)
        result = prog.evaluate(act)
        ev = _time(lambda prog=prog, act=act: prog.evaluate(act), repeat)
        rows.append(("pyk8s.api.cel", rule, comp, ev, repr(result)))
    rule, act = RULES[0]
    hit = _time(lambda: k8scel.compile_expression(rule, variables=["self"]), repeat)
    rows.append(("pyk8s.api.cel (cache hit)", rule, hit, [float("nan")], ""))
    return rows


def bench_validate(repeat: int) -> list[Row]:
    """validate_rules on a custom resource: 4 rules on spec (one of them quadratic, as
    Gateway API's uniqueness rules are), 2 on each item of a list of 16 and of 100 items."""
    from pyk8s.api.cel import validate_rules

    item = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
        "x-kubernetes-validations": [
            {"rule": "self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')"},
            {"rule": "self.port > 0 && self.port < 65536"},
        ],
    }
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "maxReplicas": {"type": "integer"},
                    "ports": {
                        "type": "array",
                        "items": item,
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                    },
                },
                "x-kubernetes-validations": [
                    {"rule": "self.replicas <= self.maxReplicas"},
                    {"rule": "self.ports.all(p, self.ports.exists_one(q, q.port == p.port))"},
                    {"rule": "self.ports.size() <= 100"},
                    {"rule": "oldSelf.replicas <= self.replicas"},
                ],
            }
        },
    }
    rows: list[Row] = []
    for n in (16, 100):
        ports = [{"name": f"p{i}", "port": 1000 + i} for i in range(n)]
        obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}}
        obj["spec"] = {"replicas": 2, "maxReplicas": 5, "ports": ports}
        assert validate_rules(schema, obj, obj) == []
        ev = _time(lambda obj=obj: validate_rules(schema, obj, obj), max(1, repeat // 20))
        what = f"CR update: 4 spec rules + 2 rules x {n} items"
        rows.append(("pyk8s validate_rules", what, [0.0], ev, "[]"))
    return rows


def bench_baseline(repeat: int) -> list[Row]:
    obj = {"replicas": 3, "maxReplicas": 5}
    ev = _time(lambda: obj["replicas"] <= obj["maxReplicas"], repeat)
    return [("python dict (baseline)", RULES[0][0], [0.0], ev, "True")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2000)
    args = ap.parse_args()
    rows = bench_baseline(args.repeat)
    for module, fn in (
        ("cel", bench_cel_rust),
        ("celpy", bench_celpy),
        ("pyk8s.api.cel", bench_pyk8s),
        ("pyk8s.api.cel", bench_validate),
    ):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            print(f"({module} is not installed: skipped)")
            continue
        rows += fn(args.repeat)
    print(
        "| package | rule | compile p50 µs | compile p99 µs | eval p50 µs | eval p99 µs | result |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for pkg, rule, comp, ev, result in rows:
        print(
            f"| {pkg} | `{rule}` | {_pct(comp, 0.5):.1f} | {_pct(comp, 0.99):.1f} | "
            f"{_pct(ev, 0.5):.1f} | {_pct(ev, 0.99):.1f} | {result} |"
        )


if __name__ == "__main__":
    main()
