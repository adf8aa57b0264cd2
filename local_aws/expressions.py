"""DynamoDB condition and update expressions, for :class:`local_aws.memory.MemoryDynamoDB`.

One parser for both kinds, covering what the pipelines send: conditions built from
comparisons (``= <> < <= > >=``), ``attribute_exists``, ``attribute_not_exists``,
``begins_with``, ``AND``/``OR``/``NOT`` and parentheses; updates built from ``SET``
(plain values, ``if_not_exists``), ``ADD`` (numbers, string and number sets) and
``REMOVE``. Names are top-level attributes, written as ``#placeholder`` or plain. Anything
else raises :class:`NotImplementedError`: a fake that guessed would prove nothing.

A parsed expression is cached by its text, since the pipelines repeat a handful of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

Item = dict[str, Any]
Names = Mapping[str, str]
Values = Mapping[str, Mapping[str, Any]]
Node = tuple[Any, ...]

_TOKEN = re.compile(r"\s*(?:(#\w+)|(:\w+)|([A-Za-z_]\w*)|(<=|>=|<>|[=<>(),]))")
_KEYWORDS = frozenset({"AND", "OR", "NOT", "SET", "ADD", "REMOVE", "DELETE"})
_FUNCTIONS = frozenset({"attribute_exists", "attribute_not_exists", "begins_with"})
_ORDERED = ("N", "S", "B")
"""The types DynamoDB orders; any two values of one type compare for equality."""


def condition(expression: str, item: Mapping[str, Any], names: Names, values: Values) -> bool:
    """Whether ``item`` (empty when absent) satisfies ``expression``."""
    return _evaluate(_condition(expression), item, names, values)


def update(expression: str, item: Item, names: Names, values: Values) -> None:
    """Apply ``expression`` to ``item`` in place."""
    for clause, target, argument in _update(expression):
        _ACTIONS[clause](item, _name(target, names), argument, names, values)


# --- parsing -------------------------------------------------------------------------

class _Tokens:
    def __init__(self, expression: str) -> None:
        self.items: list[str] = []
        position = 0
        text = expression.rstrip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise NotImplementedError(f"expression not supported: {expression!r} "
                                          f"(at {text[position:]!r})")
            self.items.append(next(group for group in match.groups() if group))
            position = match.end()
        self.expression = expression
        self.index = 0

    def peek(self) -> str | None:
        return self.items[self.index] if self.index < len(self.items) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token.upper() != expected.upper()):
            raise NotImplementedError(f"expression not supported: {self.expression!r} "
                                      f"(expected {expected or 'more'} at token {self.index})")
        self.index += 1
        return token

    def take_if(self, expected: str) -> bool:
        token = self.peek()
        if token is not None and token.upper() == expected.upper():
            self.index += 1
            return True
        return False

    def done(self) -> None:
        if self.peek() is not None:
            raise NotImplementedError(f"expression not supported: {self.expression!r} "
                                      f"(unexpected {self.peek()!r})")


@lru_cache(maxsize=1024)
def _condition(expression: str) -> Node:
    tokens = _Tokens(expression)
    node = _disjunction(tokens)
    tokens.done()
    return node


def _disjunction(tokens: _Tokens) -> Node:
    node = _conjunction(tokens)
    while tokens.take_if("OR"):
        node = ("or", node, _conjunction(tokens))
    return node


def _conjunction(tokens: _Tokens) -> Node:
    node = _negation(tokens)
    while tokens.take_if("AND"):
        node = ("and", node, _negation(tokens))
    return node


def _negation(tokens: _Tokens) -> Node:
    if tokens.take_if("NOT"):
        return ("not", _negation(tokens))
    if tokens.take_if("("):
        node = _disjunction(tokens)
        tokens.take(")")
        return node
    function = tokens.peek()
    if function in _FUNCTIONS:
        tokens.take()
        tokens.take("(")
        path = _path(tokens)
        argument = None
        if function == "begins_with":
            tokens.take(",")
            argument = _operand(tokens)
        tokens.take(")")
        return (function, path, argument)
    left = _operand(tokens)
    operator = tokens.take()
    if operator not in ("=", "<>", "<", "<=", ">", ">="):
        raise NotImplementedError(f"condition operator not supported: {operator!r} in "
                                  f"{tokens.expression!r}")
    return ("compare", operator, left, _operand(tokens))


def _operand(tokens: _Tokens) -> str:
    token = tokens.take()
    if token.startswith(":") or token.startswith("#") or (
            token[0].isalpha() and token.upper() not in _KEYWORDS):
        return token
    raise NotImplementedError(f"operand not supported: {token!r} in {tokens.expression!r}")


def _path(tokens: _Tokens) -> str:
    token = _operand(tokens)
    if token.startswith(":"):
        raise NotImplementedError(f"a value where a name belongs in {tokens.expression!r}")
    return token


@lru_cache(maxsize=1024)
def _update(expression: str) -> tuple[tuple[str, str, Any], ...]:
    """(clause, target, argument) per action, in order."""
    tokens = _Tokens(expression)
    actions: list[tuple[str, str, Any]] = []
    while tokens.peek() is not None:
        clause = tokens.take().upper()
        if clause not in ("SET", "ADD", "REMOVE"):
            raise NotImplementedError(f"update clause {clause!r} in {expression!r}")
        while True:
            target = _path(tokens)
            if clause == "SET":
                tokens.take("=")
                actions.append((clause, target, _set_value(tokens)))
            elif clause == "ADD":
                actions.append((clause, target, tokens.take()))
            else:
                actions.append((clause, target, None))
            if not tokens.take_if(","):
                break
    return tuple(actions)


def _set_value(tokens: _Tokens) -> tuple[str | None, str]:
    """(the attribute ``if_not_exists`` guards or None, the value's placeholder or name)."""
    if tokens.take_if("if_not_exists"):
        tokens.take("(")
        guarded = _path(tokens)
        tokens.take(",")
        fallback = _operand(tokens)
        tokens.take(")")
        return guarded, fallback
    return None, _operand(tokens)


# --- evaluation ----------------------------------------------------------------------

def _name(token: str, names: Names) -> str:
    return names[token] if token.startswith("#") else token


def _resolve(token: str, item: Mapping[str, Any], names: Names,
             values: Values) -> Mapping[str, Any] | None:
    if token.startswith(":"):
        return values[token]
    found: Mapping[str, Any] | None = item.get(_name(token, names))
    return found


def _evaluate(node: Node, item: Mapping[str, Any], names: Names, values: Values) -> bool:
    kind = node[0]
    if kind == "and":
        return _evaluate(node[1], item, names, values) and \
            _evaluate(node[2], item, names, values)
    if kind == "or":
        return _evaluate(node[1], item, names, values) or \
            _evaluate(node[2], item, names, values)
    if kind == "not":
        return not _evaluate(node[1], item, names, values)
    if kind == "attribute_exists":
        return _name(node[1], names) in item
    if kind == "attribute_not_exists":
        return _name(node[1], names) not in item
    if kind == "begins_with":
        stored = _resolve(node[1], item, names, values)
        prefix = _resolve(node[2], item, names, values)
        return stored is not None and prefix is not None and "S" in stored and \
            "S" in prefix and str(stored["S"]).startswith(str(prefix["S"]))
    _, operator, left_token, right_token = node
    left = _resolve(left_token, item, names, values)
    right = _resolve(right_token, item, names, values)
    if left is None or right is None:
        return False  # a missing attribute satisfies no comparison
    return _compare(left, operator, right)


def _compare(left: Mapping[str, Any], operator: str, right: Mapping[str, Any]) -> bool:
    (left_type, left_value), = left.items()
    (right_type, right_value), = right.items()
    if operator in ("=", "<>"):
        same = left_type == right_type and _scalar(left_type, left_value) == \
            _scalar(right_type, right_value)
        return same if operator == "=" else not same
    if left_type != right_type or left_type not in _ORDERED:
        return False
    a, b = _scalar(left_type, left_value), _scalar(right_type, right_value)
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[operator])


def _scalar(kind: str, value: Any) -> Any:
    if kind == "N":
        return Decimal(value)
    if kind in ("SS", "BS"):
        return frozenset(value)
    if kind == "NS":
        return frozenset(Decimal(v) for v in value)
    return value


def _set(item: Item, name: str, argument: tuple[str | None, str], names: Names,
         values: Values) -> None:
    guarded, source = argument
    if guarded is not None and _name(guarded, names) in item:
        if _name(guarded, names) != name:
            item[name] = dict(item[_name(guarded, names)])
        return
    value = _resolve(source, item, names, values)
    if value is None:
        raise NotImplementedError(f"SET from a missing attribute {source!r}")
    item[name] = dict(value)


def _add(item: Item, name: str, placeholder: str, names: Names, values: Values) -> None:
    (kind, amount), = values[placeholder].items()
    current = item.get(name)
    if kind == "N":
        base = Decimal(current["N"]) if current is not None else Decimal(0)
        item[name] = {"N": str(base + Decimal(amount))}
    elif kind in ("SS", "NS"):
        members = set(current[kind]) if current is not None else set()
        item[name] = {kind: sorted(members | set(amount))}
    else:
        raise NotImplementedError(f"ADD of a {kind} value")


def _remove(item: Item, name: str, _: Any, names: Names, values: Values) -> None:
    item.pop(name, None)


_ACTIONS: dict[str, Callable[[Item, str, Any, Names, Values], None]] = {
    "SET": _set, "ADD": _add, "REMOVE": _remove}
