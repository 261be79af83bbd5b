"""Type checking of manifest expressions, so what the validator accepts is what PostgreSQL accepts.

The parser (``expressions``) decides what may be written; this module decides whether PostgreSQL
will take it where it is used: a default must be assignable to its column, a check and an index
predicate must be boolean, an index predicate must be immutable, and nothing may fail when
PostgreSQL evaluates it while creating the table (a string literal is read by its type's input
function at once; ``ALTER TABLE ADD COLUMN`` computes a default; ``CREATE INDEX`` folds constants).

It models PostgreSQL's rules for the grammar's operators, functions and casts over the manifest's
column types: implicit and assignment casts, how an untyped string literal takes the type of
what it meets, cross-type operators (and which of them are only stable, as those mixing
``timestamptz`` with ``date``/``timestamp``), and the literal syntax of every type
(``pg_values``). Where PostgreSQL's rules are too loose to mirror exactly, it refuses a little
more than the server would, with a message saying what to write instead; it never accepts what
the server refuses. The property tests in ``tests/integration/test_manifest_agreement.py`` hold
it to that against a real server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal

from ..core import pg_values
from .column_types import ColumnType
from .expressions import (
    Between,
    Binary,
    Cast,
    ColumnRef,
    Context,
    ExpressionError,
    FuncCall,
    InList,
    IsTest,
    KeywordValue,
    Literal,
    Node,
    Unary,
)

NUMERIC_RANK = {"smallint": 0, "integer": 1, "bigint": 2, "numeric": 3, "real": 4, "double precision": 5}
# how large a value each numeric type holds: assigning to a smaller one may overflow
RANGE = {"smallint": 0, "integer": 1, "bigint": 2, "real": 3, "double precision": 4, "numeric": 5}
INTEGERS = frozenset({"smallint", "integer", "bigint"})
FLOATS = frozenset({"real", "double precision"})
STRINGS = frozenset({"text", "character varying", "character"})
DATETIMES = frozenset({"date", "timestamp without time zone", "timestamp with time zone"})
TIMESTAMPTZ = "timestamp with time zone"
# Types whose text output depends on session settings (DateStyle, IntervalStyle): casting them to text
# (or concatenating them to text) is only stable, so it may not appear in an index predicate.
STABLE_OUTPUT = DATETIMES | {"interval"}
# ... and types whose text input does: a cast from text to them is only stable.
STABLE_INPUT = DATETIMES | {"time without time zone", "interval"}
# Types without an equality operator (json) cannot be compared, indexed with btree/hash, or be unique.
NO_EQUALITY = frozenset({"json"})
ORDERED = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision", "text",
                     "character varying", "character", "boolean", "uuid", "date", "timestamp without time zone",
                     TIMESTAMPTZ, "time without time zone", "interval", "jsonb", "bytea", "inet", "tsvector"})


@dataclass(slots=True)
class Typed:
    """What an expression evaluates to. ``type`` is None for an untyped string literal (``literal``
    holds its text) and for NULL. ``constant``: no column and no session-dependent function, so
    PostgreSQL may compute it while creating the table. ``stable``: depends on session settings
    (not allowed in an index predicate). ``number``: the value of a numeric literal. Never changed once
    made (``replace`` makes another); not frozen, since a frozen dataclass takes about twice as long to
    make, and the checker makes one per node of every expression."""

    type: ColumnType | None
    literal: str | None = None
    is_null: bool = False
    constant: bool = False
    stable: bool = False
    number: int | Decimal | None = None
    is_bool_literal: bool = False

    @property
    def unknown(self) -> bool:
        return self.type is None and not self.is_null

    @property
    def known(self) -> ColumnType:
        """The type, where the caller has ruled out NULL and untyped literals."""
        if self.type is None:
            raise TypeError(f"{self.describe()} has no type here")
        return self.type

    @property
    def text(self) -> str:
        """An untyped literal's text, where the caller has found the value ``unknown``."""
        if self.literal is None:
            raise TypeError(f"{self.describe()} is not a string literal")
        return self.literal

    @property
    def base(self) -> str | None:
        return None if self.type is None else self.type.name if self.type.is_array else self.type.base

    def describe(self) -> str:
        if self.is_null:
            return "NULL"
        if self.type is None:
            return "a string literal"
        return self.type.name


BOOLEAN = ColumnType("boolean")
TEXT = ColumnType("text")
INTEGER = ColumnType("integer")
DOUBLE = ColumnType("double precision")
NUMERIC = ColumnType("numeric")


def _scalar(name: str) -> ColumnType:
    return ColumnType(name)


def _family(t: ColumnType) -> str:
    if t.is_array:
        return "array"
    if t.base in NUMERIC_RANK:
        return "number"
    if t.base in STRINGS:
        return "string"
    if t.base in DATETIMES:
        return "datetime"
    return t.base


def _fail(message: str) -> ExpressionError:
    return ExpressionError(message)


def _without_typmod(t: ColumnType) -> ColumnType:
    return ColumnType(t.base, is_array=t.is_array)


def check_literal(text: str, target: ColumnType, *, typmod: bool = False) -> None:
    """A string literal read as ``target`` (PostgreSQL does this while parsing the DDL). Operators and
    explicit casts read it as the bare type (a cast to varchar(n) truncates); ``typmod`` holds it to
    the length or precision too (an assignment, or a cast to numeric(p,s))."""
    name = target.base + ("[]" if target.is_array else "")
    keep = typmod or target.base == "numeric"
    try:
        pg_values.check_text_input(text, name, length=target.length if keep else None,
                                   scale=target.scale if keep else None)
    except pg_values.ValueRefused as exc:
        raise _fail(f"'{text[:40]}' {exc}") from None


def _check_number_fits(number: int | Decimal, target: ColumnType) -> None:
    """A numeric literal converted to ``target`` (a cast or an assignment), as PostgreSQL rounds it."""
    try:
        if target.base in INTEGERS:
            exact = Decimal(number)
            if exact.adjusted() > 30:
                raise pg_values.ValueRefused(f"out of range for {target.base}")
            # numeric -> integer rounds half away from zero
            pg_values.check_integer(int(exact.to_integral_value(rounding=ROUND_HALF_UP)), target.base)
        elif target.base == "numeric":
            pg_values.check_numeric(Decimal(number), target.length, target.scale)
        elif target.base in FLOATS:
            pg_values.check_float(Decimal(number), target.base)
    except pg_values.ValueRefused as exc:
        raise _fail(f"{number} is {exc}") from None


def _number_literal(value: int | Decimal) -> Typed:
    if isinstance(value, int):
        for name in ("integer", "bigint"):
            if -pg_values.INT_RANGES[name] <= value < pg_values.INT_RANGES[name]:
                return Typed(_scalar(name), constant=True, number=value)
        value = Decimal(value)
    try:
        pg_values.check_numeric(value)
    except pg_values.ValueRefused:
        raise _fail(f"the number {value} is out of range for PostgreSQL's numeric") from None
    return Typed(NUMERIC, constant=True, number=value)


class _Checker:
    def __init__(self, context: Context, columns: dict[str, ColumnType]):
        self.context = context
        self.columns = columns

    # -- entry -----------------------------------------------------------------------------------

    def infer(self, node: Node) -> Typed:
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, KeywordValue):
            return Typed(_scalar("date" if node.keyword == "current_date" else TIMESTAMPTZ), stable=True)
        if isinstance(node, ColumnRef):
            return Typed(self.columns[node.name])
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, IsTest):
            operand = self.infer(node.operand)
            if node.what != "NULL":
                self.require_boolean(operand, f"IS {node.what}")
            return Typed(BOOLEAN, constant=operand.constant, stable=operand.stable)
        if isinstance(node, InList):
            return self.in_list(node)
        if isinstance(node, Between):
            # a BETWEEN x AND y is (a >= x AND a <= y): each comparison is resolved on its own
            operand, low, high = self.infer(node.operand), self.infer(node.low), self.infer(node.high)
            first = self.compare(operand, low, ">=")
            second = self.compare(operand, high, "<=")
            return Typed(BOOLEAN, constant=first.constant and second.constant, stable=first.stable or second.stable)
        if isinstance(node, FuncCall):
            return self.function(node)
        if isinstance(node, Cast):
            return self.cast(node)
        raise _fail(f"cannot check {type(node).__name__}")  # pragma: no cover - every node is handled

    def literal(self, node: Literal) -> Typed:
        value = node.value
        if value is None:
            return Typed(None, is_null=True, constant=True)
        if isinstance(value, bool):
            return Typed(BOOLEAN, constant=True, is_bool_literal=True)
        if isinstance(value, int | Decimal):
            return _number_literal(value)
        return Typed(None, literal=value, constant=True)

    # -- operators ---------------------------------------------------------------------------------

    def unary(self, node: Unary) -> Typed:
        operand = self.infer(node.operand)
        if node.op == "NOT":
            self.require_boolean(operand, "NOT")
            return Typed(BOOLEAN, constant=operand.constant, stable=operand.stable)
        if operand.is_null or operand.unknown:
            raise _fail(f"'{node.op}' before an untyped value is ambiguous: cast it to a type")
        if operand.known.is_array or (operand.base not in NUMERIC_RANK and operand.base != "interval"):
            raise _fail(f"'{node.op}' does not apply to {operand.describe()}")
        if operand.number is not None:
            number = -operand.number if node.op == "-" else operand.number
            return replace(operand, number=number)
        return operand

    def binary(self, node: Binary) -> Typed:
        left, right = self.infer(node.left), self.infer(node.right)
        op = node.op
        if op in ("AND", "OR"):
            self.require_boolean(left, op)
            self.require_boolean(right, op)
            return Typed(BOOLEAN, constant=left.constant and right.constant, stable=left.stable or right.stable)
        if op in ("=", "<>", "<", "<=", ">", ">="):
            return self.compare(left, right, op)
        if op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
            for side in (left, right):
                if not (side.unknown or side.is_null or (side.type and not side.type.is_array
                                                         and side.base in STRINGS)):
                    raise _fail(f"{op} compares text, not {side.describe()}")
            return Typed(BOOLEAN, constant=left.constant and right.constant, stable=left.stable or right.stable)
        if op == "||":
            return self.concat(left, right)
        return self.arithmetic(op, left, right)

    def require_boolean(self, operand: Typed, where: str) -> None:
        if operand.is_null or (operand.type is not None and not operand.known.is_array and operand.base == "boolean"):
            return
        if operand.unknown:
            check_literal(operand.text, BOOLEAN)
            return
        raise _fail(f"{where} needs a boolean, not {operand.describe()}")

    def compare(self, left: Typed, right: Typed, op: str, common: ColumnType | None = None) -> Typed:
        """``left op right`` for a comparison operator; ``common`` is the type an IN list resolved."""
        constant = left.constant and right.constant
        stable = left.stable or right.stable
        typed = [side.type for side in (left, right) if side.type is not None]
        if common is None and not typed:
            return Typed(BOOLEAN, constant=constant, stable=stable)  # text = text
        known = _without_typmod(common or typed[0])
        for side in (left, right):
            if side.unknown:
                check_literal(side.text, known)
        if left.is_null or right.is_null:
            # NULL takes the other side's type: that type still needs the operator
            if known.base in NO_EQUALITY:
                raise _fail(f"{known.name} values cannot be compared (json has no comparison operators; use jsonb)")
            if op not in ("=", "<>") and known.base not in ORDERED:
                raise _fail(f"{known.name} values have no order")
            return Typed(BOOLEAN, constant=constant, stable=stable)
        a = left.type or known
        b = right.type or known
        for side, other in ((left, b), (right, a)):
            target = common if common is not None else other
            if side.number is not None and target.base in FLOATS and not target.is_array:
                _check_number_fits(side.number, _scalar("real") if FLOATS & {a.base, b.base} == {"real"} else target)
        if _family(a) != _family(b) or (_family(a) not in ("number", "string", "datetime", "array") and a.base != b.base):
            raise _fail(f"cannot compare {a.name} with {b.name}")
        if (a.is_array or b.is_array) and a != b and not (a.base in STRINGS and b.base in STRINGS):
            raise _fail(f"cannot compare {a.name} with {b.name}")
        if a.base in NO_EQUALITY:
            raise _fail(f"{a.name} values cannot be compared (json has no comparison operators; use jsonb)")
        if op not in ("=", "<>") and a.base not in ORDERED:
            raise _fail(f"{a.name} values have no order")
        if (a.base in DATETIMES and b.base in DATETIMES and a.base != b.base
                and TIMESTAMPTZ in (a.base, b.base) and not (left.unknown or right.unknown)):
            stable = True  # timestamptz against date/timestamp depends on the session's time zone
        return Typed(BOOLEAN, constant=constant, stable=stable)

    def concat(self, left: Typed, right: Typed) -> Typed:
        constant = left.constant and right.constant
        stable = left.stable or right.stable
        if left.is_null or right.is_null:
            other = right if left.is_null else left
            if other.is_null or other.unknown or (not other.known.is_array and other.base in STRINGS):
                return Typed(TEXT, constant=constant, stable=stable)
            raise _fail(f"|| between {other.describe()} and NULL is ambiguous: cast the NULL")
        sides = (left, right)
        known = [s for s in sides if not s.unknown]
        if not known:
            return Typed(TEXT, constant=constant, stable=stable)
        if len(known) == 1:
            k = known[0]
            other = right if k is left else left
            if k.known.is_array:
                raise _fail("|| with an array takes another array of the same type, not a string literal")
            if k.base in ("jsonb", "tsvector", "bytea"):
                check_literal(other.text, _without_typmod(k.known))
                return Typed(k.type, constant=constant, stable=stable)
            if k.base in NO_EQUALITY:
                raise _fail("|| does not apply to json (use jsonb)")
            return Typed(TEXT, constant=constant, stable=stable or (k.base in STABLE_OUTPUT))
        a, b = left.known, right.known
        if a.is_array or b.is_array:
            if a == b or (a.is_array and not b.is_array and a.base == b.base) or (
                    b.is_array and not a.is_array and a.base == b.base):
                return Typed(a if a.is_array else b, constant=constant, stable=stable)
            raise _fail(f"cannot concatenate {a.name} and {b.name}")
        if a.base in STRINGS or b.base in STRINGS:
            other_type = b if a.base in STRINGS else a
            if other_type.base in NO_EQUALITY and other_type.base not in STRINGS:
                raise _fail("|| does not apply to json (use jsonb)")
            return Typed(TEXT, constant=constant, stable=stable or other_type.base in STABLE_OUTPUT)
        if a.base == b.base and a.base in ("jsonb", "tsvector", "bytea"):
            return Typed(a, constant=constant, stable=stable)
        raise _fail(f"cannot concatenate {a.name} and {b.name} (cast one of them to text)")

    def arithmetic(self, op: str, left: Typed, right: Typed) -> Typed:
        if left.constant and right.constant and not (left.is_null or right.is_null):
            raise _fail(f"'{op}' between two constants is computed by PostgreSQL when the table is created and "
                        "may fail (1/0, 2147483647 + 1): write the resulting value")
        stable = left.stable or right.stable
        if left.is_null or right.is_null:
            other = right if left.is_null else left
            if other.type is None or other.known.is_array or other.base not in NUMERIC_RANK:
                raise _fail(f"'{op}' with NULL and {other.describe()} is ambiguous: cast the NULL")
            return Typed(other.type, stable=stable)
        if left.unknown and right.unknown:
            raise _fail(f"'{op}' between two string literals is ambiguous: cast them")
        if left.unknown or right.unknown:
            known = right if left.unknown else left
            unknown = left if left.unknown else right
            if known.known.is_array or known.base not in NUMERIC_RANK:
                raise _fail(f"'{op}' between {known.describe()} and a string literal is ambiguous: cast the string")
            check_literal(unknown.text, _without_typmod(known.known))
            left, right = (replace(left, type=known.type), right) if left.unknown else (left, replace(right, type=known.type))
        a, b = left.known, right.known
        if a.is_array or b.is_array:
            raise _fail(f"'{op}' does not apply to arrays")
        result = _arithmetic_result(op, a.base, b.base)
        if result is None:
            raise _fail(f"operator {a.name} {op} {b.name} does not exist")
        if result in FLOATS:
            for side in (left, right):
                if side.number is not None:
                    _check_number_fits(side.number, _scalar("real" if "real" in (a.base, b.base) else result))
        if TIMESTAMPTZ in (a.base, b.base) and (result != "interval" or a.base != b.base):
            stable = True  # timestamptz arithmetic with intervals or other date types uses the time zone
        return Typed(_scalar(result), stable=stable)

    def in_list(self, node: InList) -> Typed:
        """As PostgreSQL reads ``x IN (...)``: the items without columns, when there are two or more, are
        compared through one common type with x (an array); every other item on its own (``x = item``)."""
        operand = self.infer(node.operand)
        items = [(item, self.infer(item)) for item in node.items]
        without_columns = [typed for item, typed in items if not item.columns()]
        common = None
        if len(without_columns) > 1:
            try:
                common = self.common_type([operand, *without_columns], "IN")
            except ExpressionError:
                common = None  # no common type: PostgreSQL compares each item on its own
        constant, stable = operand.constant, operand.stable
        for item, typed in items:
            use = common if (common is not None and not item.columns()) else None
            result = self.compare(operand, typed, "=", use)
            constant, stable = constant and result.constant, stable or result.stable
        return Typed(BOOLEAN, constant=constant, stable=stable)

    def common_type(self, values: list[Typed], where: str) -> ColumnType | None:
        """PostgreSQL's common type of a list (IN, BETWEEN, COALESCE); None when all are untyped."""
        known = [v.type for v in values if v.type is not None]
        if not known:
            return None
        families = {_family(t) for t in known}
        if len(families) > 1:
            names = ", ".join(dict.fromkeys(t.name for t in known))
            raise _fail(f"{where} mixes types that have no common type ({names})")
        family = families.pop()
        if family == "number":
            return max(known, key=lambda t: NUMERIC_RANK[t.base])
        if family == "string":
            return known[0] if all(t == known[0] for t in known) else TEXT
        if family == "datetime":
            bases = {t.base for t in known}
            for name in (TIMESTAMPTZ, "timestamp without time zone", "date"):
                if name in bases:
                    return _scalar(name)
        if any(t != known[0] for t in known):
            names = ", ".join(dict.fromkeys(t.name for t in known))
            raise _fail(f"{where} mixes types that have no common type ({names})")
        return known[0]

    # -- functions and casts ------------------------------------------------------------------------

    def function(self, node: FuncCall) -> Typed:
        args = [self.infer(a) for a in node.args]
        constant = all(a.constant for a in args)
        stable = any(a.stable for a in args)
        name = node.name
        if name == "now":
            return Typed(_scalar(TIMESTAMPTZ), stable=True)
        if name == "gen_random_uuid":
            return Typed(_scalar("uuid"))
        if name in ("lower", "upper", "btrim", "trim", "length", "char_length"):
            # length() also measures bytea and tsvector values
            accepted = STRINGS | {"bytea", "tsvector"} if name == "length" else STRINGS
            for arg in args:
                if not (arg.unknown or arg.is_null or (arg.type is not None and not arg.type.is_array
                                                       and arg.base in accepted)):
                    raise _fail(f"{name}() takes text, not {arg.describe()} (cast it to text)")
            result = INTEGER if name in ("length", "char_length") else TEXT
            return Typed(result, constant=constant, stable=stable)
        if name in ("abs", "round"):
            if constant:
                raise _fail(f"{name}() of constants is computed by PostgreSQL when the table is created: "
                            "write the resulting value")
            return self.numeric_function(name, args, stable)
        if name == "coalesce":
            if all(a.is_null for a in args):
                return Typed(TEXT, constant=True)  # COALESCE(NULL, NULL) resolves to text
            common = self.common_type(args, "COALESCE")
            for arg in args:
                if arg.unknown and common is not None:
                    check_literal(arg.text, _without_typmod(common))
                if arg.number is not None and common is not None and common.base in FLOATS:
                    _check_number_fits(arg.number, common)
            if common is not None and common.base == TIMESTAMPTZ and any(
                    a.type is not None and a.base in DATETIMES and a.base != TIMESTAMPTZ for a in args):
                stable = True  # date/timestamp arguments are converted with the session's time zone
            # PostgreSQL reduces COALESCE to a leading non-NULL constant while planning: it is then constant
            folded = constant or (args[0].constant and not args[0].is_null)
            return Typed(common or TEXT, constant=folded, stable=stable)
        if name == "nullif":
            first, second = args
            compared = self.compare(first, second, "=")
            # the value of the implied "=" comparison's first argument: NULLIF(1, 2.2) is numeric
            promoted = self.common_type([first, second], "NULLIF") if first.type and second.type else None
            return Typed(promoted or first.type or second.type or TEXT, constant=constant,
                         stable=stable or compared.stable)
        raise _fail(f"{name}() cannot be checked")  # pragma: no cover - FUNCTIONS and this list agree

    def numeric_function(self, name: str, args: list[Typed], stable: bool) -> Typed:
        value = args[0]
        if value.is_null:
            raise _fail(f"{name}(NULL) is ambiguous: cast the NULL to a number type")
        if value.unknown:
            if name == "round" and len(args) == 2:
                raise _fail("round(x, n) needs x to be a number, not a string literal")
            check_literal(value.text, DOUBLE)
            return Typed(DOUBLE, stable=stable)
        if value.known.is_array or value.base not in NUMERIC_RANK:
            raise _fail(f"{name}() takes a number, not {value.describe()}")
        if name == "abs":
            return Typed(value.type, stable=stable)
        if len(args) == 1:
            return Typed(NUMERIC if value.base == "numeric" else DOUBLE, stable=stable)
        places = args[1]
        if value.base in FLOATS:
            raise _fail(f"round(x, n) does not exist for {value.base}: cast x to numeric")
        if not (places.is_null or (places.type is not None and places.base in ("smallint", "integer"))):
            raise _fail(f"round(x, n) needs n to be an integer, not {places.describe()}")
        return Typed(NUMERIC, stable=stable)

    def cast(self, node: Cast) -> Typed:
        operand = self.infer(node.operand)
        target = node.type
        stable = operand.stable
        if operand.is_null:
            return Typed(target, constant=True)
        if operand.unknown:
            check_literal(operand.text, target)
            return Typed(target, constant=True, stable=stable)
        source = operand.known
        if not _explicit_cast_exists(source, target):
            raise _fail(f"{source.name} cannot be cast to {target.name}")
        if operand.number is not None:
            _check_number_fits(operand.number, target)
        elif operand.constant and (target.base not in STRINGS or target.is_array) and source != target:
            raise _fail("a cast of a computed constant is evaluated by PostgreSQL when the table is created: "
                        "cast a literal instead")
        stable = stable or _cast_is_stable(source, target)
        keeps_number = not target.is_array and target.base in NUMERIC_RANK
        return Typed(target, constant=operand.constant, stable=stable,
                     number=operand.number if keeps_number else None)


def _arithmetic_result(op: str, a: str, b: str) -> str | None:
    if a in NUMERIC_RANK and b in NUMERIC_RANK:
        if op == "%" and (a in FLOATS or b in FLOATS):
            return None
        if a in FLOATS or b in FLOATS:
            return "real" if a == b == "real" else "double precision"
        return max((a, b), key=NUMERIC_RANK.__getitem__)
    small_ints = ("smallint", "integer")
    table = {
        ("date", "+", "int"): "date", ("int", "+", "date"): "date", ("date", "-", "int"): "date",
        ("date", "-", "date"): "integer",
        ("date", "+", "interval"): "timestamp without time zone", ("interval", "+", "date"): "timestamp without time zone",
        ("date", "-", "interval"): "timestamp without time zone",
        ("date", "+", "time without time zone"): "timestamp without time zone",
        ("time without time zone", "+", "date"): "timestamp without time zone",
        ("time without time zone", "+", "interval"): "time without time zone",
        ("interval", "+", "time without time zone"): "time without time zone",
        ("time without time zone", "-", "interval"): "time without time zone",
        ("time without time zone", "-", "time without time zone"): "interval",
        ("interval", "+", "interval"): "interval", ("interval", "-", "interval"): "interval",
        ("interval", "*", "num"): "interval", ("num", "*", "interval"): "interval", ("interval", "/", "num"): "interval",
    }
    for stamp in ("timestamp without time zone", TIMESTAMPTZ):
        table[(stamp, "+", "interval")] = stamp
        table[("interval", "+", stamp)] = stamp
        table[(stamp, "-", "interval")] = stamp
    for x in DATETIMES:
        for y in DATETIMES:
            if not x == y == "date":
                table[(x, "-", y)] = "interval"

    def key(name: str) -> str:
        if name in small_ints and ("date" in (a, b)):
            return "int"
        if name in NUMERIC_RANK and "interval" in (a, b):
            return "num"
        return name

    return table.get((key(a), op, key(b)))


def _explicit_cast_exists(source: ColumnType, target: ColumnType) -> bool:
    if source == target or (source.base == target.base and source.is_array == target.is_array):
        return True
    if target.base in STRINGS and not target.is_array:
        return True  # everything has a text form
    if source.is_array or target.is_array:
        if not (source.is_array and target.is_array):
            return source.base in STRINGS and not source.is_array  # text -> array through its input
        return _explicit_cast_exists(ColumnType(source.base, source.length, source.scale),
                                     ColumnType(target.base, target.length, target.scale))
    s, t = source.base, target.base
    if s in STRINGS:
        return True  # text -> anything through the type's input function
    if s in NUMERIC_RANK and t in NUMERIC_RANK:
        return True
    if s in DATETIMES and (t in DATETIMES or (t == "time without time zone" and s != "date")):
        return True
    pairs = {("time without time zone", "interval"), ("interval", "time without time zone"),
             ("integer", "boolean"), ("boolean", "integer"), ("json", "jsonb"), ("jsonb", "json")}
    if (s, t) in pairs:
        return True
    return s == "jsonb" and (t in NUMERIC_RANK or t == "boolean")


def _cast_is_stable(source: ColumnType, target: ColumnType) -> bool:
    if source.is_array != target.is_array:
        return True  # array_out and array_in read the session's settings
    if source.is_array:
        return _cast_is_stable(ColumnType(source.base), ColumnType(target.base))
    s, t = source.base, target.base
    if t in STRINGS and not target.is_array and s in STABLE_OUTPUT:
        return True
    if s in STRINGS and t in STABLE_INPUT:
        return True
    return TIMESTAMPTZ in (s, t) and s != t and (s in DATETIMES | {"time without time zone"}
                                                   or t in DATETIMES | {"time without time zone"})


# Assignment (a default into its column) ----------------------------------------------------------

def _assignable(source: ColumnType, target: ColumnType) -> bool:
    if source.is_array or target.is_array:
        return source.is_array and target.is_array and _assignable(
            ColumnType(source.base), ColumnType(target.base))
    s, t = source.base, target.base
    if s == t or t in STRINGS:
        return True
    if s in NUMERIC_RANK and t in NUMERIC_RANK:
        return True
    if t in DATETIMES and s in DATETIMES:
        return True
    allowed = {
        "time without time zone": {"timestamp without time zone", TIMESTAMPTZ, "interval"},
        "interval": {"time without time zone"},
        "jsonb": {"json"}, "json": {"jsonb"},
    }
    return s in allowed.get(t, set())


def check_default(node: Node, column: ColumnType) -> None:
    """A default PostgreSQL will store and can always compute for ``column``."""
    value = _Checker(Context.DEFAULT, {}).infer(node)
    if value.is_null:
        return
    if value.unknown:
        check_literal(value.text, column, typmod=True)
        return
    if not _assignable(value.known, column):
        raise _fail(f"a value of type {value.known.name} cannot be stored in a {column.name} column")
    if value.number is not None:
        if column.base in STRINGS and not column.is_array and column.length is not None:
            text = format(value.number, "f") if isinstance(value.number, Decimal) else str(value.number)
            if len(text) > column.length:  # PostgreSQL writes numeric without an exponent
                raise _fail(f"{value.number} is longer than {column.name}")
        elif not column.is_array:
            _check_number_fits(value.number, column)
        return
    if value.is_bool_literal:
        if column.base in STRINGS and column.length is not None and column.length < 5 and not column.is_array:
            raise _fail(f"a boolean's text is longer than {column.name}")
        return
    if column.is_array or value.type == column:
        return
    typmod_column = column.length is not None and (column.base in STRINGS or column.base == "numeric")
    narrower_number = (column.base in RANGE and value.base in RANGE and RANGE[value.base] > RANGE[column.base])
    if typmod_column or narrower_number:
        raise _fail(f"a computed value of type {value.known.name} may not fit a {column.name} column: give a literal value")


def check_condition(node: Node, context: Context, columns: dict[str, ColumnType]) -> None:
    """A CHECK (``Context.CHECK``) or an index predicate (``Context.PREDICATE``): boolean, and for a
    predicate immutable."""
    checker = _Checker(context, columns)
    value = checker.infer(node)
    checker.require_boolean(value, context.value)
    if context is Context.PREDICATE and value.stable:
        raise _fail("an index predicate must not depend on the session's time zone or date style "
                    "(timestamptz mixed with date/timestamp, or dates and intervals turned into text)")
