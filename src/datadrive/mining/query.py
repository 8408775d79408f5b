"""The text form of mining queries: tokens, syntax tree, parser, printer.

An expression selects ``(track, step)`` states of a scenario. Its grammar::

    expr     := or_expr
    or_expr  := and_expr (("or" | "|") and_expr)*
    and_expr := unary (("and" | "&") unary)*
    unary    := ("not" | "!" | "~") unary | atom
    atom     := "(" expr ")" | NAME | NAME "(" [arg ("," arg)*] ")"
    arg      := NAME "=" value | value
    value    := NUMBER [UNIT] | STRING | expr

``NAME`` is a category (``car``, ``pedestrian``, ``ego``), a predicate
without arguments (``stopped``) or a choice (``left``); which one is
decided by :mod:`datadrive.mining.vocabulary` when the expression is bound,
not here. Numbers may carry a unit: ``10m``, ``2.5 s``, ``30 km/h``,
``1.5 m/s^2``, ``45deg``. Keywords are case-insensitive.

Examples::

    car and stopped
    pedestrian and crossing(vehicle, forward=15m) and not at_crosswalk
    during(ego and turning(left), pedestrian and at_crosswalk)
    at_least(3, pedestrian and near(ego, within=20m))

Expressions also build in Python with operators (``&``, ``|``, ``~``) on the
nodes, and :func:`to_text` prints any tree back in canonical form, so
``parse(to_text(e)) == e``.

Errors are :class:`~datadrive.errors.QueryError` with the offending
token's position; the message shows the expression with a caret under it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from datadrive.errors import QueryError

__all__ = [
    "MAX_NESTING",
    "UNITS",
    "And",
    "Call",
    "Expr",
    "Name",
    "Not",
    "Number",
    "Or",
    "Text",
    "Value",
    "check_nesting",
    "parse",
    "q",
    "to_text",
]

UNITS: dict[str, tuple[str, float]] = {
    # unit -> (dimension, factor to SI)
    "m": ("length", 1.0),
    "meter": ("length", 1.0),
    "meters": ("length", 1.0),
    "metre": ("length", 1.0),
    "metres": ("length", 1.0),
    "km": ("length", 1000.0),
    "cm": ("length", 0.01),
    "ft": ("length", 0.3048),
    "feet": ("length", 0.3048),
    "foot": ("length", 0.3048),
    "yd": ("length", 0.9144),
    "yards": ("length", 0.9144),
    "mi": ("length", 1609.344),
    "mile": ("length", 1609.344),
    "miles": ("length", 1609.344),
    "s": ("duration", 1.0),
    "sec": ("duration", 1.0),
    "secs": ("duration", 1.0),
    "second": ("duration", 1.0),
    "seconds": ("duration", 1.0),
    "ms": ("duration", 0.001),
    "min": ("duration", 60.0),
    "mins": ("duration", 60.0),
    "minute": ("duration", 60.0),
    "minutes": ("duration", 60.0),
    "m/s": ("speed", 1.0),
    "mps": ("speed", 1.0),
    "km/h": ("speed", 1 / 3.6),
    "kmh": ("speed", 1 / 3.6),
    "kph": ("speed", 1 / 3.6),
    "mph": ("speed", 0.44704),
    "m/s2": ("accel", 1.0),
    "m/s^2": ("accel", 1.0),
    "mps2": ("accel", 1.0),
    "g": ("accel", 9.80665),
    "deg": ("angle", math.pi / 180.0),
    "degree": ("angle", math.pi / 180.0),
    "degrees": ("angle", math.pi / 180.0),
    "rad": ("angle", 1.0),
    "radians": ("angle", 1.0),
}
"""Units a number may carry: name -> (dimension, factor to the SI unit)."""


@dataclass(frozen=True)
class Expr:
    """A node of a query; combine nodes with ``&``, ``|`` and ``~``."""

    def __and__(self, other: Expr) -> And:
        return And(_flat(And, self) + _flat(And, other))

    def __or__(self, other: Expr) -> Or:
        return Or(_flat(Or, self) + _flat(Or, other))

    def __invert__(self) -> Not:
        return Not(self)

    def __str__(self) -> str:
        return to_text(self)


@dataclass(frozen=True)
class Number:
    """A number, with its unit as written (``None``: none given)."""

    value: float
    unit: str | None = None
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Text:
    """A quoted string."""

    value: str
    pos: int = field(default=-1, compare=False)


Value = Expr | Number | Text


@dataclass(frozen=True)
class Name(Expr):
    """A bare name: a category, a predicate without arguments, or a choice.

    Calling it builds a :class:`Call`: ``q.near(q.pedestrian, within="5m")``.
    """

    name: str
    pos: int = field(default=-1, compare=False)

    def __call__(self, *args: object, **kwargs: object) -> Call:
        return Call(self.name, tuple(_py(a) for a in args), tuple((k, _py(v)) for k, v in kwargs.items()))


@dataclass(frozen=True)
class Call(Expr):
    """A predicate or combinator with arguments."""

    name: str
    args: tuple[Value, ...] = ()
    kwargs: tuple[tuple[str, Value], ...] = ()
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class And(Expr):
    """States selected by every part."""

    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Or(Expr):
    """States selected by any part."""

    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Expr):
    """States of the candidates (the rest of an ``and``) not selected by ``part``."""

    part: Expr


MAX_NESTING = 64
"""The deepest an expression may nest (brackets, ``not``, calls). Parsing, binding and printing
recurse over the tree, so a bound keeps every query far from Python's recursion limit; no real
search comes near it."""


def _children(v: Value) -> tuple[Value, ...]:
    if isinstance(v, And | Or):
        return v.parts
    if isinstance(v, Not):
        return (v.part,)
    if isinstance(v, Call):
        return v.args + tuple(a for _, a in v.kwargs)
    return ()


def check_nesting(expr: Value) -> None:
    """Refuse an expression nested deeper than :data:`MAX_NESTING` (built by hand or by ``describe``).

    Raises:
        QueryError: it nests too deeply.
    """
    stack: list[tuple[Value, int]] = [(expr, 1)]
    while stack:  # iterative: the check must not itself recurse
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            raise QueryError(f"the expression nests deeper than {MAX_NESTING} levels")
        stack.extend((child, depth + 1) for child in _children(node))


def _py(v: object) -> Value:
    """A Python argument as a node: expressions as they are, numbers, ``"5m"``-style strings, choice words."""
    if isinstance(v, Expr | Number | Text):
        return v
    if isinstance(v, bool):
        raise QueryError(f"{v!r} is not a query argument")
    if isinstance(v, int | float):
        if not math.isfinite(float(v)):
            raise QueryError(f"{v!r} is not a finite number")
        return Number(float(v))
    if isinstance(v, str):
        toks = _tokens(v)
        if len(toks) == 2 and toks[0].kind == "NUMBER" and isinstance(toks[0].value, tuple):
            number, unit = toks[0].value
            return Number(float(number), unit)
        if len(toks) == 2 and toks[0].kind == "NAME":
            return Name(str(toks[0].value))
        return Text(v)
    raise QueryError(f"{v!r} is not a query argument (use expressions, numbers or strings)")


class _Builder:
    """``q.car``, ``q.turning("left")``: expressions built from Python (attribute = name)."""

    def __getattr__(self, name: str) -> Name:
        if name.startswith("_"):
            raise AttributeError(name)
        return Name(name)


q = _Builder()
"""Build expressions in Python: ``q.car & q.stopped``, ``q.pedestrian & q.near(q.ego, within="10m")``."""


def _flat(kind: type[And] | type[Or], e: Expr) -> tuple[Expr, ...]:
    return e.parts if isinstance(e, kind) else (e,)


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # NAME NUMBER STRING LP RP COMMA EQ AND OR NOT END
    text: str
    pos: int
    value: object = None


_UNIT_RE = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))
_NUMBER = re.compile(r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNIT = re.compile(rf"\s*(?:{_UNIT_RE})(?![A-Za-z0-9_])")
_SYMBOLS = {
    "(": "LP",
    ")": "RP",
    ",": "COMMA",
    "=": "EQ",
    "&&": "AND",
    "&": "AND",
    "||": "OR",
    "|": "OR",
    "!": "NOT",
    "~": "NOT",
}
_KEYWORDS = {"and": "AND", "or": "OR", "not": "NOT"}


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "\"'":
            j = text.find(c, i + 1)
            if j < 0:
                raise QueryError("unterminated string", text, i)
            out.append(_Token("STRING", text[i : j + 1], i, text[i + 1 : j]))
            i = j + 1
            continue
        two = text[i : i + 2]
        if two in _SYMBOLS:
            out.append(_Token(_SYMBOLS[two], two, i))
            i += 2
            continue
        if c in _SYMBOLS:
            out.append(_Token(_SYMBOLS[c], c, i))
            i += 1
            continue
        sign = ""
        j = i
        if c in "+-" and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == "."):
            sign, j = c, i + 1
        m = _NUMBER.match(text, j)
        if m and (sign or c.isdigit() or c == "."):
            value = float(sign + m.group(0))
            end = m.end()
            unit = None
            u = _UNIT.match(text, end)
            if u:
                unit = u.group(0).strip()
                end = u.end()
            elif end < n and (text[end].isalpha() or text[end] == "_"):
                unit_word = _NAME.match(text, end)
                bad = unit_word.group(0) if unit_word else text[end]
                raise QueryError(f"unknown unit {bad!r}; known units: {', '.join(sorted(UNITS))}", text, end)
            if not math.isfinite(value):
                raise QueryError("a number must be finite", text, i)
            out.append(_Token("NUMBER", text[i:end], i, (value, unit)))
            i = end
            continue
        named = _NAME.match(text, i)
        if named:
            word = named.group(0)
            kind = _KEYWORDS.get(word.lower(), "NAME")
            out.append(_Token(kind, word, i, word.lower() if kind == "NAME" else None))
            i = named.end()
            continue
        raise QueryError(f"unexpected character {c!r}", text, i)
    out.append(_Token("END", "", n))
    return out


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def nest(self, tok: _Token) -> None:
        """One level deeper (a bracket, a ``not``, a call's arguments), refused past MAX_NESTING."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise QueryError(f"the expression nests deeper than {MAX_NESTING} levels", self.text, tok.pos)

    def peek(self) -> _Token:
        return self.toks[self.i]

    def take(self, kind: str, what: str) -> _Token:
        tok = self.peek()
        if tok.kind != kind:
            found = "the end of the expression" if tok.kind == "END" else repr(tok.text)
            raise QueryError(f"expected {what}, found {found}", self.text, tok.pos)
        self.i += 1
        return tok

    def expr(self) -> Expr:
        parts = [self.and_expr()]
        while self.peek().kind == "OR":
            self.i += 1
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(p for e in parts for p in _flat(Or, e)))

    def and_expr(self) -> Expr:
        parts = [self.unary()]
        while self.peek().kind == "AND":
            self.i += 1
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(p for e in parts for p in _flat(And, e)))

    def unary(self) -> Expr:
        if self.peek().kind == "NOT":
            self.nest(self.peek())
            self.i += 1
            inner = Not(self.unary())
            self.depth -= 1
            return inner
        return self.atom()

    def atom(self) -> Expr:
        tok = self.peek()
        if tok.kind == "LP":
            self.nest(tok)
            self.i += 1
            inner = self.expr()
            self.take("RP", "')'")
            self.depth -= 1
            return inner
        if tok.kind == "NAME":
            self.i += 1
            if self.peek().kind == "LP":
                return self.call(tok)
            return Name(str(tok.value), tok.pos)
        if tok.kind in ("NUMBER", "STRING"):
            raise QueryError(
                f"a {'number' if tok.kind == 'NUMBER' else 'string'} cannot stand alone here; "
                "numbers and strings are arguments: near(pedestrian, within=5m)",
                self.text,
                tok.pos,
            )
        found = "the end of the expression" if tok.kind == "END" else repr(tok.text)
        raise QueryError(f"expected a category, a predicate or '(', found {found}", self.text, tok.pos)

    def call(self, name: _Token) -> Call:
        self.nest(self.peek())
        self.take("LP", "'('")
        args: list[Value] = []
        kwargs: list[tuple[str, Value]] = []
        seen: set[str] = set()
        if self.peek().kind != "RP":
            while True:
                tok = self.peek()
                if tok.kind == "NAME" and self.toks[self.i + 1].kind == "EQ":
                    self.i += 2
                    key = str(tok.value)
                    if key in seen:
                        raise QueryError(f"argument {key!r} given twice", self.text, tok.pos)
                    seen.add(key)
                    kwargs.append((key, self.value()))
                else:
                    if kwargs:
                        raise QueryError(
                            "a positional argument cannot follow a named one", self.text, tok.pos
                        )
                    args.append(self.value())
                if self.peek().kind == "COMMA":
                    self.i += 1
                    continue
                break
        self.take("RP", "',' or ')'")
        self.depth -= 1
        return Call(str(name.value), tuple(args), tuple(kwargs), name.pos)

    def value(self) -> Value:
        tok = self.peek()
        if tok.kind == "NUMBER":
            self.i += 1
            assert isinstance(tok.value, tuple)
            v, unit = tok.value
            nxt = self.peek()
            if unit is None and nxt.kind == "NAME":
                raise QueryError(
                    f"unknown unit {nxt.text!r} (or a missing ','); known units: {', '.join(sorted(UNITS))}",
                    self.text,
                    nxt.pos,
                )
            return Number(float(v), unit, tok.pos)
        if tok.kind == "STRING":
            self.i += 1
            return Text(str(tok.value), tok.pos)
        return self.expr()


def parse(text: str) -> Expr:
    """Parse an expression (see the module docstring for the grammar).

    Raises:
        QueryError: naming and pointing at the offending token.
    """
    if not isinstance(text, str) or not text.strip():
        raise QueryError("the expression is empty")
    p = _Parser(text)
    out = p.expr()
    tok = p.peek()
    if tok.kind != "END":
        hint = " (combine conditions with 'and' / 'or')" if tok.kind in ("NAME", "LP") else ""
        raise QueryError(f"unexpected {tok.text!r}{hint}", text, tok.pos)
    return out


# --------------------------------------------------------------------------- printer


def _number(n: Number) -> str:
    v = n.value
    text = str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))
    if n.unit is None:
        return text
    return text + (n.unit if n.unit[0].isalpha() and len(n.unit) <= 3 and "/" not in n.unit else " " + n.unit)


def _value(v: Value) -> str:
    if isinstance(v, Number):
        return _number(v)
    if isinstance(v, Text):
        return '"' + v.value.replace('"', "'") + '"'
    return to_text(v)


def to_text(e: Value) -> str:
    """The canonical text of an expression; ``parse(to_text(e)) == e``."""
    if isinstance(e, Number | Text):
        return _value(e)
    if isinstance(e, Name):
        return e.name
    if isinstance(e, Call):
        items = [_value(a) for a in e.args] + [f"{k}={_value(v)}" for k, v in e.kwargs]
        return f"{e.name}({', '.join(items)})"
    if isinstance(e, Not):
        inner = to_text(e.part)
        return f"not ({inner})" if isinstance(e.part, And | Or) else f"not {inner}"
    if isinstance(e, And):
        return " and ".join(f"({to_text(p)})" if isinstance(p, Or) else to_text(p) for p in e.parts)
    if isinstance(e, Or):
        return " or ".join(to_text(p) for p in e.parts)
    raise TypeError(f"not a query node: {e!r}")
