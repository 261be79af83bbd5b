"""The expression grammar of manifests: column defaults, CHECK constraints and index predicates.

A developer's expression is tokenised, parsed by recursive descent into an AST and re-emitted with
``psycopg.sql`` (``Identifier`` for columns, ``Literal`` for values, fixed text for operators and
functions). The developer's text never reaches the database; anything outside the grammar is
refused with a message saying what and where.

Grammar (case-insensitive keywords)::

    expr       := or_expr
    or_expr    := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | predicate
    predicate  := sum [ compare_op sum
                      | "IS" ["NOT"] ("NULL" | "TRUE" | "FALSE")
                      | ["NOT"] "IN" "(" expr ("," expr)* ")"
                      | ["NOT"] "BETWEEN" sum "AND" sum
                      | ["NOT"] ("LIKE" | "ILIKE") sum ]
    sum        := product (("+" | "-" | "||") product)*
    product    := unary (("*" | "/" | "%") unary)*
    unary      := ("-" | "+") unary | postfix
    postfix    := primary ("::" type)*
    primary    := number | string | TRUE | FALSE | NULL | CURRENT_DATE | CURRENT_TIMESTAMP
                | column | function "(" [expr ("," expr)*] ")" | "CAST" "(" expr "AS" type ")"
                | "(" expr ")"
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import Any, NamedTuple

from psycopg import sql

from .column_types import ColumnType, ColumnTypeError, parse_column_type

MAX_EXPRESSION_LENGTH = 1000
MAX_DEPTH = 32


class ExpressionError(ValueError):
    """An expression outside the grammar; the message says what and where."""


class Context(Enum):
    """Where an expression is used decides which columns and functions it may use."""

    DEFAULT = "default"  # no columns; any allowed function
    CHECK = "check"  # the table's columns; no volatile functions
    PREDICATE = "index predicate"  # the table's columns; immutable functions only


@dataclass(frozen=True)
class Function:
    sql_name: str  # emitted text: schema-qualified so a search_path cannot redirect it
    min_args: int
    max_args: int | None
    volatility: str  # "immutable" | "stable" | "volatile"


FUNCTIONS: dict[str, Function] = {
    "now": Function("pg_catalog.now", 0, 0, "stable"),
    "gen_random_uuid": Function("pg_catalog.gen_random_uuid", 0, 0, "volatile"),
    "lower": Function("pg_catalog.lower", 1, 1, "immutable"),
    "upper": Function("pg_catalog.upper", 1, 1, "immutable"),
    "length": Function("pg_catalog.length", 1, 1, "immutable"),
    "char_length": Function("pg_catalog.char_length", 1, 1, "immutable"),
    "btrim": Function("pg_catalog.btrim", 1, 2, "immutable"),
    "trim": Function("pg_catalog.btrim", 1, 1, "immutable"),
    "abs": Function("pg_catalog.abs", 1, 1, "immutable"),
    "round": Function("pg_catalog.round", 1, 2, "immutable"),
    "coalesce": Function("COALESCE", 1, None, "immutable"),  # syntax, not a catalog function
    "nullif": Function("NULLIF", 2, 2, "immutable"),
}
KEYWORD_VALUES = {"current_date": ("CURRENT_DATE", "stable"), "current_timestamp": ("CURRENT_TIMESTAMP", "stable")}
COMPARE_OPS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
SUM_OPS = {"+", "-", "||"}
PRODUCT_OPS = {"*", "/", "%"}
# Words with a meaning of their own in SQL: never a column name inside an expression.
_SQL_WORDS = frozenset(["all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "both", "case", "cast", "check", "collate", "column", "constraint", "create", "current_catalog", "current_role", "current_time", "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "exists", "fetch", "for", "foreign", "from", "grant", "group", "having", "in", "initially", "intersect", "into", "lateral", "leading", "limit", "localtime", "localtimestamp", "not", "null", "offset", "on", "only", "or", "order", "placing", "primary", "references", "returning", "select", "session_user", "some", "symmetric", "table", "then", "to", "trailing", "union", "unique", "user", "using", "variadic", "when", "where", "window", "with", "between", "like", "ilike", "is", "isnull", "notnull", "similar", "escape", "overlaps", "join", "values", "row", "delete", "insert", "update", "drop", "alter", "truncate", "execute", "copy", "do", "perform", "declare", "begin", "commit", "rollback"])

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--|/\*)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<unterminated>')
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>::|<=|>=|<>|!=|\|\||[=<>+\-*/%(),\[\]])
    """,
    re.VERBOSE,
)


class Token(NamedTuple):
    kind: str  # number | string | word | op | end | bad
    text: str
    pos: int


_new_token = tuple.__new__  # Token's own __new__, without its Python-level wrapper


def tokenize(text: str) -> list[Token]:
    """Tokens up to the first character outside the grammar, which becomes a ``bad`` token: the
    parser reports it only when it gets there, so errors come in reading order."""
    tokens: list[Token] = []
    match = _TOKEN_RE.match
    pos, length = 0, len(text)
    while pos < length:
        m = match(text, pos)
        kind = m.lastgroup if m is not None else None
        if kind == "ws":
            pos = m.end()  # type: ignore[union-attr]
            continue
        problem = None
        if m is None:
            problem = f"unexpected character {text[pos]!r} at position {pos + 1}"
        elif kind == "comment":
            problem = f"comments are not allowed (position {pos + 1})"
        elif kind == "unterminated":
            problem = f"unterminated string starting at position {pos + 1}"
        elif kind == "number" and m.end() < length and (text[m.end()].isalpha() or text[m.end()] == "_"):
            problem = f"malformed number at position {pos + 1}"
        elif kind == "string" and tokens and tokens[-1].kind == "word" and (
            tokens[-1].pos + len(tokens[-1].text) == pos
        ):
            # E'..', B'..', X'..', U&'..': prefixed strings change the escaping rules
            problem = f"prefixed string literals are not allowed (position {tokens[-1].pos + 1})"
            pos = tokens.pop().pos
        if problem is not None or m is None or kind is None:
            tokens.append(Token("bad", problem or f"unexpected character at position {pos + 1}", pos))
            return tokens
        tokens.append(_new_token(Token, (kind, m.group(), pos)))
        pos = m.end()
    tokens.append(Token("end", "", length))
    return tokens


# AST ---------------------------------------------------------------------------------------------

def text_literal(value: str) -> str:
    """A text value as SQL, exactly as ``psycopg.sql.Literal(value).as_string()`` writes it: quotes
    doubled inside quotes, unless it holds a backslash or a NUL, which go to ``Literal`` itself (its
    ``E'...'`` form, or its error). A quarter of the cost, for the many short values of a module's DDL."""
    if "\\" in value or "\x00" in value:
        return sql.Literal(value).as_string()
    return "'" + value.replace("'", "''") + "'"


def number_literal(value: Any) -> str:
    """An int or a finite Decimal as SQL, exactly as ``psycopg.sql.Literal(value).as_string()`` writes it
    (its digits, a negative number after a space so that no ``-`` follows an operator's ``-``); any
    other value goes to ``Literal`` itself. Without psycopg's adapters, whose code is cold when a job
    starts (tests/unit/test_manifest_validation.py holds the two to the same text)."""
    if type(value) is int or (isinstance(value, Decimal) and value.is_finite()):
        text = str(value)
        return " " + text if text.startswith("-") else text
    return sql.Literal(value).as_string()


def sql_literal(value: Any) -> str:
    """Any value of the provisioner's own statements as SQL, exactly as ``psycopg.sql.Literal`` writes it: text
    (``text_literal``), NULL, a uuid as its hex digits cast to uuid, a number (``number_literal``);
    anything else by ``Literal`` itself. They travel as text in one simple query with the DDL script."""
    if isinstance(value, str):
        return text_literal(value)
    if value is None:
        return "NULL"
    if isinstance(value, uuid.UUID):
        return "'" + value.hex + "'::uuid"
    return number_literal(value)


@lru_cache(maxsize=4096)
def _quoted(name: str) -> str:
    """A column name quoted by ``psycopg.sql.Identifier`` (remembered: a container meets few names)."""
    return sql.Identifier(name).as_string()


class Node:
    """An expression of the grammar. ``to_text`` writes it as SQL: names quoted by
    ``psycopg.sql.Identifier``, values by ``psycopg.sql.Literal``, operators and functions from the
    grammar's fixed text, each operation in parentheses (composing ``psycopg.sql`` objects for every
    node took about 5 us an expression, a quarter of planning a module; bench/provisioning.py)."""

    def to_text(self) -> str:  # pragma: no cover - every node overrides it
        raise NotImplementedError

    def to_sql(self) -> sql.Composable:
        return sql.SQL(self.to_text())

    def columns(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class Literal(Node):
    value: Any  # str | int | Decimal | bool | None

    def to_text(self) -> str:
        if self.value is None:
            return "NULL"
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return text_literal(self.value)
        return number_literal(self.value)


@dataclass(frozen=True)
class KeywordValue(Node):
    keyword: str

    def to_text(self) -> str:
        return KEYWORD_VALUES[self.keyword][0]


@dataclass(frozen=True)
class ColumnRef(Node):
    name: str

    def to_text(self) -> str:
        return _quoted(self.name)

    def columns(self) -> set[str]:
        return {self.name}


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-", "+", "NOT"
    operand: Node

    def to_text(self) -> str:
        return "(" + self.op + " " + self.operand.to_text() + ")"

    def columns(self) -> set[str]:
        return self.operand.columns()


@dataclass(frozen=True)
class Binary(Node):
    op: str  # from COMPARE_OPS values, SUM_OPS, PRODUCT_OPS, AND, OR, LIKE, ILIKE, NOT LIKE, NOT ILIKE
    left: Node
    right: Node

    def to_text(self) -> str:
        return "(" + self.left.to_text() + " " + self.op + " " + self.right.to_text() + ")"

    def columns(self) -> set[str]:
        return self.left.columns() | self.right.columns()


@dataclass(frozen=True)
class IsTest(Node):
    operand: Node
    what: str  # NULL | TRUE | FALSE
    negated: bool

    def to_text(self) -> str:
        return "(" + self.operand.to_text() + " IS " + ("NOT " if self.negated else "") + self.what + ")"

    def columns(self) -> set[str]:
        return self.operand.columns()


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    items: tuple[Node, ...]
    negated: bool

    def to_text(self) -> str:
        return ("(" + self.operand.to_text() + " " + ("NOT " if self.negated else "") + "IN ("
                + ", ".join(i.to_text() for i in self.items) + "))")

    def columns(self) -> set[str]:
        return self.operand.columns().union(*(i.columns() for i in self.items))


@dataclass(frozen=True)
class Between(Node):
    operand: Node
    low: Node
    high: Node
    negated: bool

    def to_text(self) -> str:
        return ("(" + self.operand.to_text() + " " + ("NOT " if self.negated else "") + "BETWEEN "
                + self.low.to_text() + " AND " + self.high.to_text() + ")")

    def columns(self) -> set[str]:
        return self.operand.columns() | self.low.columns() | self.high.columns()


@dataclass(frozen=True)
class FuncCall(Node):
    name: str  # a key of FUNCTIONS
    args: tuple[Node, ...]

    def to_text(self) -> str:
        return FUNCTIONS[self.name].sql_name + "(" + ", ".join(a.to_text() for a in self.args) + ")"

    def columns(self) -> set[str]:
        return set().union(*(a.columns() for a in self.args))


@dataclass(frozen=True)
class Cast(Node):
    operand: Node
    type: ColumnType

    def to_text(self) -> str:
        # the type's name comes from the allow-list (column_types)
        return "CAST(" + self.operand.to_text() + " AS " + self.type.name + ")"

    def columns(self) -> set[str]:
        return self.operand.columns()


# Parser ------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, text: str, context: Context, columns: frozenset[str]):
        self.tokens = tokenize(text)
        self.context = context
        self.allowed_columns = columns
        self.depth = 0
        self._move(0)

    # helpers. The current token's kind and text (lower-cased for a word) are kept in attributes, so
    # that the grammar's many look-aheads do not each index and inspect the token.
    def _move(self, i: int) -> None:
        self.i = i
        tok = self.tokens[i]
        self.kind = tok.kind
        self.low = tok.text.lower() if tok.kind == "word" else tok.text

    def _look(self) -> str:
        """The current token's kind; a token outside the grammar raises its error here, as ``tok`` does."""
        if self.kind == "bad":
            raise ExpressionError(self.tokens[self.i].text)
        return self.kind

    @property
    def tok(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind == "bad":
            raise ExpressionError(tok.text)
        return tok

    def _where(self, tok: Token | None = None) -> str:
        tok = tok or self.tok
        return "at the end" if tok.kind == "end" else f"at position {tok.pos + 1}"

    def error(self, message: str, tok: Token | None = None) -> ExpressionError:
        return ExpressionError(f"{message} {self._where(tok)}")

    def is_word(self, *words: str) -> bool:
        return self._look() == "word" and self.low in words

    def is_op(self, *ops: str) -> bool:
        return self._look() == "op" and self.low in ops

    def advance(self) -> Token:
        tok = self.tok
        self._move(self.i + 1)
        return tok

    def expect_op(self, op: str) -> None:
        if not self.is_op(op):
            found = repr(self.tok.text) if self.tok.kind != "end" else "the end"
            raise self.error(f"expected {op!r} but found {found}")
        self.advance()

    def expect_word(self, word: str) -> None:
        if not self.is_word(word):
            raise self.error(f"expected {word.upper()}")
        self.advance()

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested more than {MAX_DEPTH} levels deep")

    # grammar
    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r}")
        return node

    def expr(self) -> Node:
        self.nested()
        try:
            return self.or_expr()
        finally:
            self.depth -= 1

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.is_word("or"):
            self.advance()
            node = Binary("OR", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.is_word("and"):
            self.advance()
            node = Binary("AND", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.is_word("not"):
            self.advance()
            self.nested()
            try:
                return Unary("NOT", self.not_expr())
            finally:
                self.depth -= 1
        return self.predicate()

    def predicate(self) -> Node:
        left = self.sum()
        kind = self._look()
        if kind == "op":
            if self.low in COMPARE_OPS:
                op = COMPARE_OPS[self.advance().text]
                return Binary(op, left, self.sum())
            return left
        if kind != "word" or self.low not in _PREDICATE_WORDS:
            return left
        if self.is_word("is"):
            self.advance()
            negated = self.is_word("not")
            if negated:
                self.advance()
            if not self.is_word("null", "true", "false"):
                raise self.error("expected NULL, TRUE or FALSE after IS")
            return IsTest(left, self.advance().text.upper(), negated)
        negated = False
        if self.is_word("not"):
            self.advance()
            negated = True
            if not self.is_word("in", "between", "like", "ilike"):
                raise self.error("expected IN, BETWEEN, LIKE or ILIKE after NOT")
        if self.is_word("in"):
            self.advance()
            self.expect_op("(")
            if self.is_word("select", "with", "values"):
                raise self.error("subqueries are not allowed")
            items = [self.expr()]
            while self.is_op(","):
                self.advance()
                items.append(self.expr())
            self.expect_op(")")
            return InList(left, tuple(items), negated)
        if self.is_word("between"):
            self.advance()
            low = self.sum()
            self.expect_word("and")
            return Between(left, low, self.sum(), negated)
        if self.is_word("like", "ilike"):
            op = self.advance().text.upper()
            return Binary(("NOT " if negated else "") + op, left, self.sum())
        return left

    def sum(self) -> Node:
        node = self.product()
        while self._look() == "op" and self.low in SUM_OPS:
            op = self.advance().text
            node = Binary(op, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self._look() == "op" and self.low in PRODUCT_OPS:
            op = self.advance().text
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.is_op("-", "+"):
            op = self.advance().text
            self.nested()
            try:
                return Unary(op, self.unary())
            finally:
                self.depth -= 1
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while self.is_op("::"):
            self.advance()
            node = Cast(node, self.type_name())
        return node

    def type_name(self) -> ColumnType:
        start = self.tok
        words: list[str] = []
        while self.tok.kind == "word" and (not words or self.tok.text.lower() in _TYPE_CONTINUATIONS):
            words.append(self.advance().text.lower())
        if not words:
            raise self.error("expected a type name")
        text = " ".join(words)
        if self.is_op("("):
            self.advance()
            args = [self._type_arg()]
            if self.is_op(","):
                self.advance()
                args.append(self._type_arg())
            self.expect_op(")")
            text += "(" + ",".join(args) + ")"
        if self.is_op("["):
            self.advance()
            self.expect_op("]")
            text += "[]"
        try:
            return parse_column_type(text)
        except ColumnTypeError as exc:
            raise ExpressionError(f"cast {self._where(start)}: {exc}") from None

    def _type_arg(self) -> str:
        if self.tok.kind != "number" or not self.tok.text.isdigit():
            raise self.error("expected an integer length or precision")
        return self.advance().text

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            text = tok.text
            if _DIGITS.fullmatch(text):
                return Literal(int(text))
            return Literal(Decimal(text))
        if tok.kind == "string":
            self.advance()
            return Literal(tok.text[1:-1].replace("''", "'"))
        if self.is_op("("):
            self.advance()
            if self.is_word("select", "with", "values"):
                raise self.error("subqueries are not allowed")
            node = self.expr()
            self.expect_op(")")
            return node
        if tok.kind != "word":
            found = "the end of the expression" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected a value, a column or a function but found {found}", tok)
        word = tok.text.lower()
        if word in ("true", "false"):
            self.advance()
            return Literal(word == "true")
        if word == "null":
            self.advance()
            return Literal(None)
        if word in KEYWORD_VALUES:
            self.advance()
            if self.context is Context.PREDICATE:
                raise self.error(f"{word} is not allowed in an index predicate (it is not immutable)", tok)
            return KeywordValue(word)
        if word == "cast":
            self.advance()
            self.expect_op("(")
            operand = self.expr()
            self.expect_word("as")
            ctype = self.type_name()
            self.expect_op(")")
            return Cast(operand, ctype)
        if word in ("select", "with", "values", "exists"):
            raise self.error("subqueries are not allowed", tok)
        self.advance()
        if self.is_op("("):
            return self.function_call(word, tok)
        if word in _SQL_WORDS:
            raise self.error(f"SQL keyword {tok.text!r} is not allowed here", tok)
        return self.column(word, tok)

    def function_call(self, word: str, tok: Token) -> Node:
        fn = FUNCTIONS.get(word)
        if fn is None:
            raise self.error(f"function {tok.text}() is not allowed (allowed: {', '.join(sorted(FUNCTIONS))})", tok)
        if self.context is Context.PREDICATE and fn.volatility != "immutable":
            raise self.error(f"{word}() is not allowed in an index predicate (it is not immutable)", tok)
        if self.context is Context.CHECK and fn.volatility == "volatile":
            raise self.error(f"{word}() is not allowed in a check (it is volatile)", tok)
        self.expect_op("(")
        if self.is_word("select", "with", "values"):
            raise self.error("subqueries are not allowed")
        args: list[Node] = []
        if not self.is_op(")"):
            args.append(self.expr())
            while self.is_op(","):
                self.advance()
                args.append(self.expr())
        self.expect_op(")")
        if len(args) < fn.min_args or (fn.max_args is not None and len(args) > fn.max_args):
            expected = str(fn.min_args) if fn.min_args == fn.max_args else f"{fn.min_args} or more"
            if fn.max_args is not None and fn.max_args != fn.min_args:
                expected = f"{fn.min_args} to {fn.max_args}"
            raise self.error(f"{word}() takes {expected} argument(s), got {len(args)}", tok)
        return FuncCall(word, tuple(args))

    def column(self, word: str, tok: Token) -> Node:
        if self.context is Context.DEFAULT:
            raise self.error(
                f"a default cannot refer to a column ({tok.text!r}); quote text values, e.g. '{tok.text}'", tok
            )
        if word not in self.allowed_columns:
            raise self.error(f"unknown column {tok.text!r}", tok)
        return ColumnRef(word)


# The words a predicate may continue with after its first operand (IS, [NOT] IN / BETWEEN / LIKE / ILIKE).
_PREDICATE_WORDS = frozenset({"is", "not", "in", "between", "like", "ilike"})
_DIGITS = re.compile(r"\d+")
# One integer or one string literal with nothing else but white space (the tokenizer's own patterns).
_LONE_LITERAL = re.compile(r"\s*(?:(?P<digits>\d+)|'(?P<string>(?:[^']|'')*)')\s*")
_TYPE_CONTINUATIONS = frozenset({"precision", "varying", "with", "without", "time", "zone"})


def parse_expression(text: object, context: Context, columns: frozenset[str] | set[str] = frozenset()) -> Node:
    """Parse a manifest expression; raises ``ExpressionError`` for anything outside the grammar."""
    if isinstance(text, bool):
        return Literal(text)
    if isinstance(text, int):
        return Literal(text)
    if isinstance(text, float):
        return Literal(Decimal(repr(text)))
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression as a string, got {type(text).__name__}")
    if not text.strip():
        raise ExpressionError("the expression is empty")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    if "\x00" in text:
        raise ExpressionError("the expression contains a NUL character")
    lone = _LONE_LITERAL.fullmatch(text)
    if lone is not None:
        # the commonest default, one integer or one string literal: the node the parser makes of it
        # (tests/unit/test_manifest_validation.py holds the two to the same answer)
        digits = lone.group("digits")
        return Literal(int(digits)) if digits is not None else Literal(lone.group("string").replace("''", "'"))
    return _Parser(text, context, frozenset(columns)).parse()
