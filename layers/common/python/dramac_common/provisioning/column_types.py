"""The column types a manifest may use, with lengths and precisions, in canonical form.

A type is parsed from the manifest's text (``varchar(255)``, ``numeric(10,2)``, ``text[]``) into a
``ColumnType`` whose ``name`` is exactly what PostgreSQL's ``format_type`` reports for it. The
planner compares that name with the catalog to detect a retyped column, and it is the only text
used for the type in DDL: it comes from this module's table, never from the manifest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from psycopg import sql

# manifest spelling → (canonical name, parameters: "none" | "length" | "precision" | "optional_length")
_BASE_TYPES: dict[str, tuple[str, str]] = {
    "text": ("text", "none"),
    "varchar": ("character varying", "optional_length"),
    "character varying": ("character varying", "optional_length"),
    "char": ("character", "length"),
    "character": ("character", "length"),
    "smallint": ("smallint", "none"),
    "int2": ("smallint", "none"),
    "integer": ("integer", "none"),
    "int": ("integer", "none"),
    "int4": ("integer", "none"),
    "bigint": ("bigint", "none"),
    "int8": ("bigint", "none"),
    "numeric": ("numeric", "precision"),
    "decimal": ("numeric", "precision"),
    "real": ("real", "none"),
    "float4": ("real", "none"),
    "double precision": ("double precision", "none"),
    "float8": ("double precision", "none"),
    "boolean": ("boolean", "none"),
    "bool": ("boolean", "none"),
    "uuid": ("uuid", "none"),
    "date": ("date", "none"),
    "timestamptz": ("timestamp with time zone", "none"),
    "timestamp with time zone": ("timestamp with time zone", "none"),
    "timestamp": ("timestamp without time zone", "none"),
    "timestamp without time zone": ("timestamp without time zone", "none"),
    "time": ("time without time zone", "none"),
    "time without time zone": ("time without time zone", "none"),
    "interval": ("interval", "none"),
    "jsonb": ("jsonb", "none"),
    "json": ("json", "none"),
    "bytea": ("bytea", "none"),
    "inet": ("inet", "none"),
    "tsvector": ("tsvector", "none"),
}

MAX_VARCHAR_LENGTH = 10_485_760
MAX_NUMERIC_PRECISION = 1000

# Type families, for the index-method and default checks of the validator.
NUMERIC_TYPES = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision"})
TEXT_TYPES = frozenset({"text", "character varying", "character"})
NO_BTREE = frozenset({"json"})  # json has no ordering (jsonb has)

_TYPE_RE = re.compile(
    r"^(?P<base>[a-z][a-z0-9]*(?: [a-z][a-z0-9]*)*)"
    r"(?:\((?P<p>\d{1,8})(?:,(?P<s>\d{1,4}))?\))?"
    r"(?P<array>\[\])?$"
)


class ColumnTypeError(ValueError):
    """Not an allowed column type; the message says what is allowed."""


@dataclass(frozen=True)
class ColumnType:
    base: str  # canonical base name, e.g. "character varying"
    length: int | None = None  # varchar/char length, numeric precision
    scale: int | None = None  # numeric scale
    is_array: bool = False

    @property
    def name(self) -> str:
        """The name as ``format_type`` prints it: ``character varying(255)``, ``numeric(10,2)[]``."""
        text = self.base
        if self.length is not None:
            text += f"({self.length},{self.scale})" if self.base == "numeric" else f"({self.length})"
        return text + ("[]" if self.is_array else "")

    def as_sql(self) -> sql.SQL:
        # Safe: every part comes from the allow-list above or is an int checked by parse_column_type.
        return sql.SQL(self.name)

    # Index methods: a column needs an operator class of the method (its default one, or the one
    # ``opclass`` names). Arrays use their element type's: json has no equality, so json[] has none.
    @property
    def supports_btree(self) -> bool:
        return self.base not in NO_BTREE

    @property
    def supports_gin(self) -> bool:
        return (self.is_array and self.base not in NO_BTREE) or (not self.is_array and self.base in {"jsonb", "tsvector"})

    @property
    def supports_gist(self) -> bool:
        return not self.is_array and self.base in {"tsvector", "inet"}

    @property
    def supports_hash(self) -> bool:
        return self.base not in {"json", "tsvector"}

    def opclass(self, method: str) -> str | None:
        """The operator class to name in CREATE INDEX when the type has no default one for ``method``."""
        if method == "gist" and self.base == "inet" and not self.is_array:
            return "inet_ops"  # built in, but not the default for gist (btree_gist's would be)
        return None


def allowed_type_names() -> list[str]:
    return sorted(_BASE_TYPES)


def parse_column_type(text: object) -> ColumnType:
    """``'VARCHAR( 255 )'`` → ``ColumnType('character varying', 255)``; anything else raises."""
    if not isinstance(text, str) or not text.strip() or len(text) > 64:
        raise ColumnTypeError(f"type must be a short string such as 'text' or 'numeric(10,2)', got {text!r}")
    return _parse_type_text(text)


# A container sees few distinct type texts ('text', 'uuid', 'numeric(12,2)'...), each many times: a
# manifest names a column's type where it declares it, and its checks, defaults and casts name them again.
@lru_cache(maxsize=512)
def _parse_type_text(text: str) -> ColumnType:
    normalised = re.sub(r"\s+", " ", text.strip().lower())
    normalised = re.sub(r" ?([(),\[\]]) ?", r"\1", normalised)
    m = _TYPE_RE.match(normalised)
    if not m or m.group("base") not in _BASE_TYPES:
        raise ColumnTypeError(
            f"type {text!r} is not allowed; use one of: {', '.join(allowed_type_names())} "
            "(with (n) for varchar/char, (p,s) for numeric, and [] for arrays)"
        )
    base, params = _BASE_TYPES[m.group("base")]
    p = int(m.group("p")) if m.group("p") is not None else None
    s = int(m.group("s")) if m.group("s") is not None else None
    is_array = m.group("array") is not None
    if params == "none":
        if p is not None:
            raise ColumnTypeError(f"type {text!r}: {base} takes no length or precision")
        return ColumnType(base, is_array=is_array)
    if params in ("length", "optional_length"):
        if s is not None:
            raise ColumnTypeError(f"type {text!r}: {base} takes one length, e.g. {m.group('base')}(255)")
        if p is None:
            if params == "length":
                p = 1  # char without a length is char(1), as in PostgreSQL
            else:
                return ColumnType(base, is_array=is_array)
        if not 1 <= p <= MAX_VARCHAR_LENGTH:
            raise ColumnTypeError(f"type {text!r}: length must be between 1 and {MAX_VARCHAR_LENGTH}")
        return ColumnType(base, p, is_array=is_array)
    # numeric(p[,s]); bare numeric has neither
    if p is None:
        return ColumnType(base, is_array=is_array)
    if not 1 <= p <= MAX_NUMERIC_PRECISION:
        raise ColumnTypeError(f"type {text!r}: precision must be between 1 and {MAX_NUMERIC_PRECISION}")
    s = 0 if s is None else s
    if s > p:
        raise ColumnTypeError(f"type {text!r}: scale {s} is larger than precision {p}")
    return ColumnType(base, p, s, is_array=is_array)
