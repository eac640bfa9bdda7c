"""A small evaluator of the CloudWatch Logs JSON filter-pattern subset deployctl generates, for tests.

moto implements PutMetricFilter but not TestMetricFilter, and no AWS account is reachable here, so
the rendered patterns are checked with this evaluator instead. It follows "Using filter patterns to
match terms in JSON log events"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/matching-terms-json-log-events.html, part of
https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html):

- a pattern is `{ EXPRESSION }`; an expression compares a selector `$.a.b` with a value using
  `=`, `!=`, `<`, `>`, `<=`, `>=`; expressions combine with `&&` and `||` and group with ( );
- string values are double-quoted and compared for equality (`=`, `!=`) only;
- numeric comparisons apply to JSON numbers; a missing selector, or a non-JSON event, never matches.

Only that subset is accepted: anything else (arrays, wildcards, IS NULL, regexes, space-delimited
patterns) raises ValueError rather than guessing. `&&` and `||` mixed at one level without
parentheses are refused too: deployctl always parenthesises, and the docs leave precedence
unstated. It is a test aid, not a replacement for TestMetricFilter on a real account.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"""\s*(?:(?P<sel>\$(?:\.[A-Za-z_][A-Za-z0-9_]*)+)|(?P<op>!=|<=|>=|=|<|>)|(?P<str>"[^"\\*]*")
                        |(?P<num>-?[0-9]+(?:\.[0-9]+)?)|(?P<logic>&&|\|\|)|(?P<paren>[()]))""", re.VERBOSE)


@dataclass(frozen=True)
class Comparison:
    selector: str
    op: str
    value: str | float


def _tokens(body: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(body):
        if body[pos:].strip() == "":
            break
        m = _TOKEN.match(body, pos)
        if not m:
            raise ValueError(f"unsupported filter pattern syntax at {body[pos:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str) -> str:
        tok = self.peek()
        if tok is None or tok[0] != kind:
            raise ValueError(f"expected {kind}, got {tok}")
        self.i += 1
        return tok[1]

    def expression(self) -> Any:
        terms, ops = [self.term()], set()
        while (tok := self.peek()) is not None and tok[0] == "logic":
            ops.add(self.take("logic"))
            terms.append(self.term())
        if len(ops) > 1:
            raise ValueError("&& and || mixed without parentheses")
        return (ops.pop(), terms) if ops else terms[0]

    def term(self) -> Any:
        tok = self.peek()
        if tok == ("paren", "("):
            self.i += 1
            inner = self.expression()
            if self.take("paren") != ")":
                raise ValueError("unbalanced parentheses")
            return inner
        selector = self.take("sel")
        op = self.take("op")
        nxt = self.peek()
        if nxt is not None and nxt[0] == "str":
            if op not in ("=", "!="):
                raise ValueError(f"{op} compares numbers, not strings")
            return Comparison(selector, op, self.take("str")[1:-1])
        return Comparison(selector, op, float(self.take("num")))


def parse(pattern: str) -> Any:
    text = pattern.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("only JSON filter patterns `{ ... }` are supported")
    parser = _Parser(_tokens(text[1:-1]))
    tree = parser.expression()
    if parser.peek() is not None:
        raise ValueError(f"unexpected {parser.peek()}")
    return tree


_MISSING = object()


def select(event: Any, selector: str) -> Any:
    value = event
    for part in selector[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compare(c: Comparison, event: Any) -> bool:
    value = select(event, c.selector)
    if value is _MISSING:
        return False
    if isinstance(c.value, str):
        same = isinstance(value, str) and value == c.value
        return same if c.op == "=" else not same
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return {"=": value == c.value, "!=": value != c.value, "<": value < c.value, ">": value > c.value,
            "<=": value <= c.value, ">=": value >= c.value}[c.op]


def _eval(tree: Any, event: Any) -> bool:
    if isinstance(tree, Comparison):
        return _compare(tree, event)
    op, terms = tree
    results = (_eval(t, event) for t in terms)
    return all(results) if op == "&&" else any(results)


def matches(pattern: str, line: str) -> bool:
    """True when the JSON filter pattern matches the log event `line` (a non-JSON line never does)."""
    tree = parse(pattern)
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return _eval(tree, event)


def metric_datum(transformation: dict[str, Any], line: str) -> tuple[float, dict[str, str]] | None:
    """What one matching event publishes for a metricTransformation: the value (a number, or a
    `$.field` holding a number) and the dimensions (`$.field` references, strings). None when a
    referenced field is missing: CloudWatch Logs publishes nothing for that event."""
    event = json.loads(line)
    raw = transformation["metricValue"]
    value = select(event, raw) if raw.startswith("$.") else float(raw)
    if value is _MISSING or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    dims: dict[str, str] = {}
    for name, ref in transformation.get("dimensions", {}).items():
        found = select(event, ref)
        if found is _MISSING:
            return None
        dims[name] = str(found)
    return float(value), dims
