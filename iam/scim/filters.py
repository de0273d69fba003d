"""SCIM 2.0 filters (RFC 7644 section 3.4.2.2) and sortBy compiled to SQLAlchemy expressions.

The caller describes its resource with a mapping from attribute path to SQL, and gets back a
boolean expression for `.where(...)` (or an expression to order by): filtering happens in SQL,
on bound parameters, never in Python and never in SQL text built from strings. This module
knows SQLAlchemy and SCIM filters, nothing of the application using it.

    from sqlalchemy import exists, select

    USER = {
        "id": Attr(Account.id, type="id"),
        "username": Attr(Account.email),                       # a case-insensitive string
        "externalid": Attr(Account.external_id, case_exact=True),
        "active": Attr(Account.enabled),                       # type inferred: boolean
        "name.givenname": Attr(Person.first_name),             # a sub-attribute: its dotted path
        "meta.created": Attr(Account.created_at),              # type inferred: datetime
        "emails": MultiValued(rows=[{"value": Attr(Account.email), "type": "work", "primary": True}]),
        "employeenumber": Attr(Person.employee_number),        # enterprise: its URN is stripped
    }
    GROUP = {
        "displayname": Attr(Group.name),
        "members": MultiValued(
            exists=lambda condition: exists(select(1).where(group_members.c.group_id == Group.id, condition)),
            attributes={"value": Attr(group_members.c.account_id, type="id"), "type": "User"}),
    }
    select(Account).outerjoin(Person).where(compile_filter('userName sw "j" and not (active eq false)', USER))
    select(Account).order_by(*sort_order_clauses(compile_sort("name.givenName", USER), descending=False))

What is supported: the whole grammar of RFC 7644 figure 1. Attribute operators `eq ne co sw ew
pr gt ge lt le`, logical `and`, `or`, `not ( ... )` with not > and > or, parentheses, value
paths `emails[type eq "work" and primary eq true]` (some element matches) optionally followed by
a sub-attribute comparison `emails[type eq "work"].value co "@example"` (the same element
matches both), attribute paths with one sub-attribute (`name.givenName`) and schema-qualified
paths (`urn:ietf:params:scim:schemas:core:2.0:User:userName`). Operator names, keywords,
attribute names and schema URNs are case-insensitive. Values are JSON literals: strings (with
every JSON escape), numbers, true, false, null. Whitespace between tokens is optional where
nothing is ambiguous.

The mapping (`compile_filter(text, attributes)`): a dict from the lower-cased attribute path
("username", "name.givenname", "emails") to

- `Attr(expression, type=None, case_exact=False)`: a single-valued attribute backed by a column
  or any SQL expression (or a Python constant). Types: "string", "boolean", "datetime",
  "integer", "reference" (a case-exact string), "id" (a case-exact string; over an integer
  column `id eq "12"` compares numbers, so the primary key index serves it, and a value that
  is not an integer's canonical decimal form matches no row). Without `type` it is inferred
  from the SQL type (Boolean, Integer, DateTime, otherwise string).
- `MultiValued(rows=[{sub: Attr or constant, ...}, ...])`: a multi-valued complex attribute
  held in columns of the row itself, one dict per element (a constant such as "work", True or
  `literal("work")` is a sub-attribute every row has). A filter on it is an OR over the rows,
  each row's conditions AND'ed (the same element must match all of them); a row whose `value`
  is absent (NULL or empty) is no element, so `emails[type eq "home"]` needs a home email.
- `MultiValued(exists=function, attributes={sub: Attr, ...})`: a multi-valued attribute held in
  a correlated table: `function(condition)` returns an EXISTS over that table with `condition`
  (built from `attributes`, which name that table's columns) in its WHERE.

A path `parent.sub` is looked up as a whole first; otherwise `parent` must be a MultiValued
and `sub` one of its sub-attributes. A bare multi-valued path (`emails co "x"`) means its
default sub-attribute, `value` (`MultiValued(default=...)`). A path that is the prefix of
dotted keys (`name`, when "name.givenname" exists) is a singular complex attribute: it takes
`name[givenName eq "x" and familyName pr]` and `name pr` (some sub-attribute present), not a
comparison. Schema URNs: those of `schemas=` are stripped before the look-up (default: the
core User and Group schemas and the enterprise User extension; pass the resource's own, e.g.
(CORE_USER, ENTERPRISE_USER) for users, so that a Group URN is refused there); an unknown URN,
an unknown path and anything the mapping does not hold raise InvalidFilter ("... is not an
attribute that can be filtered on").

The choices:

- Two-valued logic: every comparison is TRUE or FALSE, never SQL NULL, so `not (F)` is exactly
  the complement of `F` (an absent value does not equal, contain or exceed anything; rows of an
  outer join without a match are absent values).
- `ne`: an absent (NULL) value is not equal to anything, so `ne` matches rows where the value
  is NULL or differs (`not (a eq v)` and `a ne v` are the same set).
- `eq null` means "not present" and `ne null` means "present" (the same as `not (a pr)` and
  `a pr`); `null` with any other operator is refused.
- `pr`: not NULL, and for strings not the empty string. On a multi-valued attribute: some
  element has its default sub-attribute (`value`) present (without one: some element exists);
  an element of `rows` that lacks a sub-attribute simply has it absent.
- Strings compare case-insensitively (lower() on both sides; ILIKE for co/sw/ew) unless
  `case_exact` (and always for "reference" and "id"). co/sw/ew escape the LIKE metacharacters
  `%`, `_` and the escape character `/` of the value, with an explicit ESCAPE clause, so a value
  is never a pattern; case-exact co/sw/ew use LIKE on PostgreSQL and instr()/substr() on SQLite
  (whose LIKE ignores ASCII case). `co ""`, `sw ""` and `ew ""` match every non-NULL string.
  SQLite's lower() and LIKE fold ASCII letters only; PostgreSQL folds by its locale. gt/ge/lt/le
  on strings follow the database's collation (code points on SQLite and with the C collation).
- Datetimes: RFC 3339 / xsd:dateTime with date and time (`2024-01-31T12:00:00Z`, fractions and
  `+02:00` offsets allowed); a value without an offset is UTC. Compared as instants against
  columns holding UTC, to the microsecond (a value finer than that is compared exactly: it
  equals no stored value and lies between two). co/sw/ew do not apply to datetimes, integers
  or booleans, and gt/ge/lt/le not to booleans (RFC 7644: invalidFilter).
- Types of values are checked: a boolean takes true/false, an integer a JSON integer in the
  64-bit range, strings/references/ids a string, datetimes a string that parses.
- Limits: the text is at most MAX_LENGTH (4096) characters and nests parentheses/brackets at
  most MAX_DEPTH (20) deep. The depth is SQLite's: its parser's stack (100 entries) overflows
  on SQL whose AND/OR alternate about 25-30 levels deep, and a filter nesting and/or to the
  limit, value path included, stays well below that. Negations are pushed down to the
  comparisons (De Morgan), so `not (...)` adds no SQL nesting of its own. A value path cannot
  contain another one (RFC 7644: valFilter holds sub-attributes of the parent only). A string
  value may not hold NUL (which PostgreSQL cannot store) or an unpaired surrogate.
- Multi-valued comparisons mean "some element": `members.value ne "12"` is a group with a
  member other than 12; `not (members.value eq "12")` is a group without member 12.

`compile_sort(sort_by, attributes)` returns the expression to order by for a single-valued
attribute (lower() of it for case-insensitive strings); a multi-valued or complex attribute or
an unknown path raises InvalidSort (an InvalidFilter). `sort_order_clauses(expression,
descending)` orders by it the way RFC 7644 section 3.4.2.3 asks on every database: resources
without a value last when ascending, first when descending.

Nothing but InvalidFilter is raised for any filter text (tests/scim/test_filters.py fuzzes it).

The parser is a small recursive descent of its own rather than scim2-filter-parser's: that
one's grammar gives `and` and `or` the same precedence (`a or b and c` parses as
`(a or b) and c`), and its errors and limits are not ours to choose.
"""
import json
import operator
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sqlalchemy import Boolean, DateTime, Integer, String, and_, case, cast, false, func, literal, not_, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

__all__ = ["Attr", "MultiValued", "InvalidFilter", "InvalidSort", "compile_filter", "compile_sort",
           "sort_order_clauses", "CORE_USER", "CORE_GROUP", "ENTERPRISE_USER", "DEFAULT_SCHEMAS", "MAX_LENGTH",
           "MAX_DEPTH", "TYPES"]

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
DEFAULT_SCHEMAS = (CORE_USER, CORE_GROUP, ENTERPRISE_USER)

MAX_LENGTH = 4096
MAX_DEPTH = 20

TYPES = ("string", "boolean", "datetime", "integer", "reference", "id")
_COMPARISONS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
OPERATORS = _COMPARISONS + ("pr",)
_OPERATORS_OF = {
    "string": OPERATORS,
    "reference": OPERATORS,
    "id": OPERATORS,
    "boolean": ("eq", "ne", "pr"),
    "datetime": ("eq", "ne", "gt", "ge", "lt", "le", "pr"),
    "integer": ("eq", "ne", "gt", "ge", "lt", "le", "pr"),
}
_ORDERING = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}
_INT64 = (-2 ** 63, 2 ** 63 - 1)
_LIKE_ESCAPE = "/"


class InvalidFilter(Exception):
    """The filter cannot be applied: answer 400 with scimType invalidFilter and `message`."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return self.message


class InvalidSort(InvalidFilter):
    """sortBy names nothing that can be sorted on (an unknown, multi-valued or complex attribute)."""


# ---------------------------------------------------------------------------------------------
# The caller's mapping


class Attr:
    """A single-valued attribute: an SQL expression (or a Python constant), its SCIM type and
    whether its strings compare case-sensitively ("reference" and "id" always do)."""

    __slots__ = ("expression", "type", "case_exact", "integer_column")

    def __init__(self, expression, type=None, case_exact=False):
        if hasattr(expression, "__clause_element__"):  # an ORM attribute (Account.email)
            expression = expression.__clause_element__()
        if not isinstance(expression, ClauseElement):
            if expression is None or isinstance(expression, (list, dict, tuple, set)):
                raise TypeError(f"Attr takes an SQL expression or a constant, not {expression!r}")
            expression = literal(expression, _sql_type_of_constant(expression))
        if type is None:
            type = _scim_type_of(expression.type)
        if type not in TYPES:
            raise ValueError(f"unknown SCIM attribute type {type!r} (one of {', '.join(TYPES)})")
        self.expression = expression
        self.type = type
        self.case_exact = bool(case_exact) or type in ("reference", "id")
        self.integer_column = type == "id" and _is_integer(expression.type)

    def __repr__(self):
        return f"Attr({self.expression!r}, type={self.type!r}, case_exact={self.case_exact!r})"


class MultiValued:
    """A multi-valued complex attribute: `rows` (elements held in the row itself, a list of
    dicts of sub-attribute -> Attr or constant) or `exists` (a function of a condition returning
    an EXISTS over a correlated table) with `attributes` (sub-attribute -> Attr over that
    table). `default` is the sub-attribute a bare path means (`emails eq "x"`)."""

    def __init__(self, rows=None, exists=None, attributes=None, default="value"):
        if (rows is None) == (exists is None):
            raise ValueError("MultiValued takes rows=[...] or exists=function, one of the two")
        if exists is not None and not attributes:
            raise ValueError("MultiValued(exists=...) needs attributes={sub-attribute: Attr}")
        self.exists = exists
        if rows is not None:
            self.rows = [{name.lower(): _as_attr(value) for name, value in row.items() if value is not None}
                         for row in rows]
        else:
            self.rows = [{name.lower(): _as_attr(value) for name, value in attributes.items()}]
        # What each sub-attribute is (its type), from the first element that has it.
        self.known = {}
        for row in self.rows:
            for name, attr in row.items():
                self.known.setdefault(name, attr)
        self.default = default.lower() if default else None

    def any(self, condition_of):
        """Some element satisfies condition_of(element) (element: sub-attribute -> Attr). An
        element of `rows` whose default sub-attribute is absent (an email column holding NULL)
        is no element at all."""
        if self.exists is not None:
            return self.exists(condition_of(self.rows[0]))
        if not self.rows:
            return false()
        conditions = []
        for row in self.rows:
            condition = condition_of(row)
            if self.default in row:
                condition = and_(_present(row[self.default]), condition)
            conditions.append(condition)
        return or_(*conditions)

    def __repr__(self):
        kind = "exists" if self.exists is not None else f"{len(self.rows)} rows"
        return f"MultiValued({kind}, sub-attributes {sorted(self.known)})"


def _as_attr(value):
    return value if isinstance(value, Attr) else Attr(value)


def _unwrap(sql_type):
    while isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    return sql_type


def _is_integer(sql_type):
    return isinstance(_unwrap(sql_type), Integer)


def _scim_type_of(sql_type):
    sql_type = _unwrap(sql_type)
    if isinstance(sql_type, Boolean):
        return "boolean"
    if isinstance(sql_type, Integer):
        return "integer"
    if isinstance(sql_type, DateTime):
        return "datetime"
    return "string"


def _sql_type_of_constant(value):
    if isinstance(value, bool):
        return Boolean()
    if isinstance(value, int):
        return Integer()
    if isinstance(value, datetime):
        return DateTime(timezone=True)
    return String()


# ---------------------------------------------------------------------------------------------
# Tokens


class _Token:
    __slots__ = ("kind", "text", "start", "end", "value")

    def __init__(self, kind, text, start, end, value=None):
        self.kind, self.text, self.start, self.end, self.value = kind, text, start, end, value

    def describe(self):
        if self.kind == "end":
            return "the end of the filter"
        return f"{_show(self.text)} at position {self.start + 1}"


_NAME = r"\$?[A-Za-z][A-Za-z0-9_-]*"
_TOKENS = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<lparen>\() | (?P<rparen>\)) | (?P<lbracket>\[) | (?P<rbracket>\])
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<word>[A-Za-z$][A-Za-z0-9_$:.-]*)
  | (?P<subattr>\.""" + _NAME + r""")
""", re.VERBOSE)
_PATH = re.compile(r"(?:(?P<urn>.+):)?(?P<name>" + _NAME + r")(?:\.(?P<sub>" + _NAME + r"))?")
_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")


def _show(text, limit=40):
    """`text` quoted for a message: shortened, unprintable characters escaped."""
    if len(text) > limit:
        text = text[:limit] + "..."
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    return f"'{shown}'"


def _tokenize(text):
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKENS.match(text, position)
        if match is None:
            character = text[position]
            if character == '"':
                raise InvalidFilter(f"the string starting at position {position + 1} is not a valid JSON string "
                                    "(unterminated, a control character, or an unknown escape)")
            raise InvalidFilter(f"unexpected character {_show(character)} at position {position + 1}")
        kind = match.lastgroup
        if kind != "space":
            token = _Token(kind, match.group(), match.start(), match.end())
            if kind == "string":
                token.value = _decode_string(token)
            elif kind == "number":
                token.value = int(token.text) if _INTEGER.fullmatch(token.text) else Decimal(token.text)
            tokens.append(token)
        position = match.end()
    tokens.append(_Token("end", "", len(text), len(text)))
    return tokens


def _decode_string(token):
    try:
        value = json.loads(token.text)
    except ValueError:  # the pattern admits only valid JSON strings; defensive
        raise InvalidFilter(f"{token.describe()} is not a valid JSON string") from None
    if "\x00" in value:
        raise InvalidFilter(f"the string at position {token.start + 1} contains a NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidFilter(f"the string at position {token.start + 1} contains an unpaired surrogate "
                            "(a \\uD800-\\uDFFF escape without its pair)") from None
    return value


# ---------------------------------------------------------------------------------------------
# Syntax tree


class _Path:
    __slots__ = ("urn", "name", "sub", "text")

    def __init__(self, urn, name, sub, text):
        self.urn, self.name, self.sub, self.text = urn, name, sub, text


class _Value:
    __slots__ = ("kind", "value", "text")  # kind: string, number, boolean, null

    def __init__(self, kind, value, text):
        self.kind, self.value, self.text = kind, value, text


class _Or:
    def __init__(self, items):
        self.items = items


class _And:
    def __init__(self, items):
        self.items = items


class _Not:
    def __init__(self, item):
        self.item = item


class _Compare:
    def __init__(self, path, op, value):
        self.path, self.op, self.value = path, op, value  # value is None for pr


class _ValuePath:
    def __init__(self, path, condition, then):
        self.path, self.condition, self.then = path, condition, then  # then: a _Compare or None


def _parse_path(token, inner):
    """The attribute path of a word token; `inner`: the opening bracket of the value path it is in."""
    match = _PATH.fullmatch(token.text)
    if match is None:
        raise InvalidFilter(f"{token.describe()} is not an attribute path (name, name.subAttribute, "
                            "or a schema URN, ':', and one of those)")
    if inner is not None and (match["urn"] or match["sub"]):
        raise InvalidFilter(f"inside the brackets at position {inner.start + 1} only sub-attribute names "
                            f"are allowed, found {token.describe()}")
    return _Path(match["urn"], match["name"], match["sub"], token.text)


# ---------------------------------------------------------------------------------------------
# Parser: recursive descent over RFC 7644 figure 1, precedence not > and > or


class _Parser:
    def __init__(self, text):
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    def peek(self, ahead=0):
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self):
        token = self.peek()
        if token.kind != "end":
            self.index += 1
        return token

    @staticmethod
    def is_word(token, *words):
        return token.kind == "word" and token.text.lower() in words

    def enter(self, token):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidFilter(f"the filter nests parentheses and brackets more than {MAX_DEPTH} deep "
                                f"(at position {token.start + 1})")

    def close(self, kind, opened):
        token = self.take()
        if token.kind != kind:
            closing = ")" if kind == "rparen" else "]"
            raise InvalidFilter(f"expected '{closing}' to close the '{opened.text}' at position {opened.start + 1}, "
                                f"found {token.describe()}")
        self.depth -= 1
        return token

    def parse(self):
        if self.peek().kind == "end":
            raise InvalidFilter("the filter is empty")
        node = self.parse_or(inner=None)
        token = self.peek()
        if token.kind != "end":
            raise InvalidFilter(f"expected 'and', 'or' or the end of the filter, found {token.describe()}")
        return node

    def parse_or(self, inner):
        items = [self.parse_and(inner)]
        while self.is_word(self.peek(), "or"):
            self.take()
            items.append(self.parse_and(inner))
        return items[0] if len(items) == 1 else _Or(items)

    def parse_and(self, inner):
        items = [self.parse_term(inner)]
        while self.is_word(self.peek(), "and"):
            self.take()
            items.append(self.parse_term(inner))
        return items[0] if len(items) == 1 else _And(items)

    def parse_term(self, inner):
        """`inner`: the value path's opening bracket while inside one, else None."""
        token = self.peek()
        if token.kind == "lparen":
            self.take()
            self.enter(token)
            node = self.parse_or(inner)
            self.close("rparen", token)
            return node
        if self.is_word(token, "not") and self.peek(1).kind == "lparen":
            self.take()
            opened = self.take()
            self.enter(opened)
            node = self.parse_or(inner)
            self.close("rparen", opened)
            return _Not(node)
        if token.kind == "word":
            return self.parse_attribute_expression(inner)
        if token.kind == "end":
            raise InvalidFilter("the filter ends where an attribute path, '(' or 'not (' was expected")
        raise InvalidFilter(f"expected an attribute path, '(' or 'not (', found {token.describe()}")

    def parse_attribute_expression(self, inner):
        token = self.take()
        path = _parse_path(token, inner)
        following = self.peek()
        if following.kind != "lbracket":
            return self.parse_operation(path)
        if inner is not None:
            raise InvalidFilter(f"a value filter '[...]' cannot hold another one (position {following.start + 1})")
        self.take()
        self.enter(following)
        condition = self.parse_or(inner=following)
        closing = self.close("rbracket", following)
        then = None
        after = self.peek()
        if after.kind == "subattr" and after.start == closing.end:
            self.take()
            sub = after.text[1:]
            then = self.parse_operation(_Path(None, sub, None, f"{path.text}[...].{sub}"))
        return _ValuePath(path, condition, then)

    def parse_operation(self, path):
        token = self.take()
        if token.kind != "word" or token.text.lower() not in OPERATORS:
            if token.kind == "word":
                raise InvalidFilter(f"the operator {_show(token.text)} is not supported "
                                    f"(after {_show(path.text)}; operators: {', '.join(OPERATORS)})")
            raise InvalidFilter(f"expected an operator ({', '.join(OPERATORS)}) after {_show(path.text)}, "
                                f"found {token.describe()}")
        op = token.text.lower()
        if op == "pr":
            return _Compare(path, "pr", None)
        return _Compare(path, op, self.parse_value(op))

    def parse_value(self, op):
        token = self.take()
        if token.kind == "string":
            return _Value("string", token.value, token.text)
        if token.kind == "number":
            return _Value("number", token.value, token.text)
        if self.is_word(token, "true", "false"):
            return _Value("boolean", token.text.lower() == "true", token.text.lower())
        if self.is_word(token, "null"):
            return _Value("null", None, "null")
        raise InvalidFilter(f"expected a value after '{op}' (a string in double quotes, a number, true, false "
                            f"or null), found {token.describe()}")


# ---------------------------------------------------------------------------------------------
# Compiler: syntax tree -> SQLAlchemy


class _Complex:
    """A singular complex attribute: the prefix of dotted keys of the mapping (`name`)."""

    def __init__(self, prefix, members):
        self.prefix, self.members = prefix, members  # members: sub-attribute -> Attr


class _Absent:
    """A sub-attribute one element of `rows` does not have: typed like the others, never present."""

    def __init__(self, like):
        self.type, self.case_exact, self.integer_column = like.type, like.case_exact, like.integer_column


class _Scope:
    """Where names are looked up: the whole mapping, one element of a multi-valued attribute, or
    the sub-attributes of a singular complex attribute."""

    def __init__(self, compiler, element=None, multi=None, complex_=None, label=""):
        self.compiler, self.element, self.multi, self.complex, self.label = (
            compiler, element, multi, complex_, label)

    def resolve(self, path):
        if self.multi is not None:
            name = path.name.lower()
            if name not in self.multi.known:
                raise _unknown(f"{self.label}.{path.name}")
            attr = self.element.get(name)
            return attr if attr is not None else _Absent(self.multi.known[name])
        if self.complex is not None:
            attr = self.complex.members.get(path.name.lower())
            if attr is None:
                raise _unknown(f"{self.label}.{path.name}")
            return attr
        return self.compiler.resolve(path)


def _unknown(text):
    return InvalidFilter(f"{_show(text)} is not an attribute that can be filtered on")


class _Compiler:
    def __init__(self, attributes, schemas):
        if not isinstance(attributes, dict):
            raise TypeError("attributes is a dict of lower-cased attribute path -> Attr or MultiValued")
        self.attributes = {}
        for key, value in attributes.items():
            self.attributes[key.lower()] = value if isinstance(value, (Attr, MultiValued)) else Attr(value)
        self.complex = {}
        for key, value in self.attributes.items():
            if "." in key and isinstance(value, Attr):
                prefix, sub = key.split(".", 1)
                if prefix not in self.attributes:
                    self.complex.setdefault(prefix, {})[sub] = value
        self.schemas = {schema.lower() for schema in schemas}
        self.top = _Scope(self)

    def resolve(self, path):
        """The target of a top-level path: Attr, (MultiValued, sub or None) or _Complex."""
        if path.urn is not None and path.urn.lower() not in self.schemas:
            raise InvalidFilter(f"{_show(path.urn)} is not a schema whose attributes can be filtered on")
        name = path.name.lower()
        key = f"{name}.{path.sub.lower()}" if path.sub else name
        found = self.attributes.get(key)
        if isinstance(found, Attr):
            return found
        if isinstance(found, MultiValued):
            return (found, None)
        if path.sub:
            parent = self.attributes.get(name)
            if isinstance(parent, MultiValued):
                if path.sub.lower() not in parent.known:
                    raise _unknown(path.text)
                return (parent, path.sub.lower())
        elif name in self.complex:
            return _Complex(name, self.complex[name])
        raise _unknown(path.text)

    # --- nodes

    def compile(self, node, scope, negate=False):
        """SQL for `node` (for `not (node)` if `negate`): negations are pushed down to the
        comparisons (De Morgan), so the SQL nests no deeper than the filter's and/or do."""
        if isinstance(node, (_Or, _And)):
            items = [self.compile(item, scope, negate) for item in node.items]
            return and_(*items) if isinstance(node, _Or) == negate else or_(*items)
        if isinstance(node, _Not):
            return self.compile(node.item, scope, not negate)
        if isinstance(node, _ValuePath):
            expression = self.value_path(node, scope)
        else:
            expression = self.comparison(node, scope.resolve(node.path), node.path.text)
        return not_(expression) if negate else expression

    def value_path(self, node, scope):
        target = scope.resolve(node.path)
        if isinstance(target, tuple) and target[1] is None:
            multi = target[0]

            def condition(element):
                inner = _Scope(self, element=element, multi=multi, label=node.path.text)
                expression = self.compile(node.condition, inner)
                if node.then is not None:
                    expression = and_(expression, self.compile(node.then, inner))
                return expression

            return multi.any(condition)
        if isinstance(target, _Complex):
            inner = _Scope(self, complex_=target, label=node.path.text)
            expression = self.compile(node.condition, inner)
            if node.then is not None:
                expression = and_(expression, self.compile(node.then, inner))
            return expression
        raise InvalidFilter(f"{_show(node.path.text)} is not a multi-valued or complex attribute: "
                            "it takes no '[...]' filter")

    def comparison(self, node, target, label):
        value = node.value
        if value is not None and value.kind == "null":
            if node.op == "eq":
                return not_(self.present(target, label))
            if node.op == "ne":
                return self.present(target, label)
            raise InvalidFilter(f"null can only be compared with eq or ne, not {node.op} ({_show(label)})")
        if node.op == "pr":
            return self.present(target, label)
        if isinstance(target, tuple):
            multi, sub = target
            sub = sub or multi.default
            if sub is None or sub not in multi.known:
                raise InvalidFilter(f"{_show(label)} is a multi-valued attribute without a 'value': "
                                    f"compare one of its sub-attributes ({', '.join(sorted(multi.known))})")
            return multi.any(lambda element: _compare(_element_attr(multi, element, sub), node.op, value,
                                                      f"{label}.{sub}" if target[1] is None else label))
        if isinstance(target, _Complex):
            raise InvalidFilter(f"{_show(label)} is a complex attribute: compare one of its sub-attributes "
                                f"({', '.join(f'{label}.{sub}' for sub in sorted(target.members))})")
        return _compare(target, node.op, value, label)

    def present(self, target, label):
        if isinstance(target, tuple):
            multi, sub = target
            sub = sub or (multi.default if multi.default in multi.known else None)
            if sub is not None:
                return multi.any(lambda element: _present(_element_attr(multi, element, sub)))
            if multi.exists is not None:
                return multi.exists(true())
            return multi.any(lambda element: or_(*[_present(attr) for attr in element.values()]))
        if isinstance(target, _Complex):
            return or_(*[_present(attr) for attr in target.members.values()])
        return _present(target)


def _element_attr(multi, element, sub):
    attr = element.get(sub)
    return attr if attr is not None else _Absent(multi.known[sub])


# ---------------------------------------------------------------------------------------------
# Comparisons: each is TRUE or FALSE, never NULL (NOT then inverts exactly)


def _present(attr):
    if isinstance(attr, _Absent):
        return false()
    column = attr.expression
    if attr.type in ("string", "reference") or (attr.type == "id" and not attr.integer_column):
        return and_(column.is_not(None), column != "")
    return column.is_not(None)


def _compare(attr, op, value, label):
    if op not in _OPERATORS_OF[attr.type]:
        raise InvalidFilter(f"the operator {op} does not apply to {_show(label)}, a {attr.type} attribute "
                            f"(it takes {', '.join(_OPERATORS_OF[attr.type])})")
    converted = _convert(attr.type, value, label)
    if isinstance(attr, _Absent):
        return true() if op == "ne" else false()
    column = attr.expression
    if attr.type == "boolean":
        return column.is_(converted) if op == "eq" else column.is_not(converted)
    if attr.type == "datetime":
        moment, exact = converted
        if not exact:  # finer than the microseconds a column holds: strictly between two of them
            if op in ("eq", "ne"):
                return false() if op == "eq" else true()
            op = {"lt": "le", "ge": "gt"}.get(op, op)
        return _ordered(column, op, moment)
    if attr.type == "integer":
        return _ordered(column, op, converted)
    if attr.integer_column:
        if op in ("eq", "ne"):
            number = int(converted) if _INTEGER.fullmatch(converted) and len(converted) < 21 else None
            if number is None or not _INT64[0] <= number <= _INT64[1]:  # no such id: never equal
                return false() if op == "eq" else true()
            return _ordered(column, op, number)
        column = cast(column, String)
    return _string(column, op, converted, attr.case_exact)


def _ordered(column, op, value):
    if op == "eq":
        return and_(column.is_not(None), column == value)
    if op == "ne":
        return or_(column.is_(None), column != value)
    return and_(column.is_not(None), _ORDERING[op](column, value))


def _string(column, op, value, case_exact):
    present = column.is_not(None)
    if op in ("co", "sw", "ew"):
        if value == "":
            return present
        escaped = value.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", _LIKE_ESCAPE + "%").replace(
            "_", _LIKE_ESCAPE + "_")
        pattern = {"co": f"%{escaped}%", "sw": f"{escaped}%", "ew": f"%{escaped}"}[op]
        if case_exact:
            match = _CASE_EXACT_MATCH[op](column, literal(pattern, String()), literal(value, String()))
        else:
            match = column.ilike(literal(pattern, String()), escape=_LIKE_ESCAPE)
        return and_(present, match)
    if case_exact:
        left, right = column, literal(value, String())
    else:
        left, right = func.lower(column), func.lower(literal(value, String()))
    if op == "eq":
        return and_(present, left == right)
    if op == "ne":
        return or_(column.is_(None), left != right)
    return and_(present, _ORDERING[op](left, right))


def _convert(scim_type, value, label):
    """The Python value to bind for `value` compared with an attribute of `scim_type`."""
    if scim_type == "boolean":
        if value.kind != "boolean":
            raise InvalidFilter(f"{_show(label)} is a boolean attribute: compare it with true or false, "
                                f"not {_show(value.text)}")
        return value.value
    if scim_type == "integer":
        if value.kind != "number" or not isinstance(value.value, int):
            raise InvalidFilter(f"{_show(label)} is an integer attribute: compare it with an integer, "
                                f"not {_show(value.text)}")
        if not _INT64[0] <= value.value <= _INT64[1]:
            raise InvalidFilter(f"{_show(value.text)} is out of range for {_show(label)} (a 64-bit integer)")
        return value.value
    if value.kind != "string":
        raise InvalidFilter(f"{_show(label)} is a {scim_type} attribute: compare it with a string in double "
                            f"quotes, not {_show(value.text)}")
    if scim_type == "datetime":
        return _parse_datetime(value.value, label)
    return value.value


_DATETIME = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,12}))?"
    r"(?P<zone>[Zz]|(?P<sign>[+-])(?P<zone_hour>[0-9]{2}):(?P<zone_minute>[0-9]{2}))?")


def _parse_datetime(text, label):
    """(the instant in UTC to the microsecond, whether that is exact: no nonzero digit beyond)."""
    match = _DATETIME.fullmatch(text)
    problem = f"{_show(text)} is not a date and time for {_show(label)} (e.g. \"2024-01-31T12:00:00Z\")"
    if match is None:
        raise InvalidFilter(problem)
    try:
        zone = timezone.utc
        if match["sign"]:
            offset = timedelta(hours=int(match["zone_hour"]), minutes=int(match["zone_minute"]))
            zone = timezone(offset if match["sign"] == "+" else -offset)
        fraction = match["fraction"] or ""
        microsecond = int(fraction.ljust(6, "0")[:6])
        moment = datetime(int(match["year"]), int(match["month"]), int(match["day"]), int(match["hour"]),
                          int(match["minute"]), int(match["second"]), microsecond, tzinfo=zone)
        return moment.astimezone(timezone.utc), not fraction[6:].strip("0")
    except (ValueError, OverflowError):  # month 13, hour 24, offset of 24h or more, beyond year 1..9999
        raise InvalidFilter(problem) from None


# ---------------------------------------------------------------------------------------------
# Case-exact co/sw/ew: LIKE where it is case-sensitive, instr()/substr() on SQLite (whose LIKE
# folds ASCII case). Arguments: the string, the escaped LIKE pattern, the plain value.


class _CaseExactMatch(FunctionElement):
    type = Boolean()
    inherit_cache = True
    name = "scim_case_exact_match"


class _CaseExactContains(_CaseExactMatch):
    inherit_cache = True


class _CaseExactStartsWith(_CaseExactMatch):
    inherit_cache = True


class _CaseExactEndsWith(_CaseExactMatch):
    inherit_cache = True


_CASE_EXACT_MATCH = {"co": _CaseExactContains, "sw": _CaseExactStartsWith, "ew": _CaseExactEndsWith}


@compiles(_CaseExactMatch)
def _case_exact_like(element, compiler, **kw):
    column, pattern, _ = list(element.clauses)
    return compiler.process(column.like(pattern, escape=_LIKE_ESCAPE), **kw)


@compiles(_CaseExactMatch, "sqlite")
def _case_exact_sqlite(element, compiler, **kw):
    column, _, value = list(element.clauses)
    if isinstance(element, _CaseExactContains):
        test = func.instr(column, value) > 0
    elif isinstance(element, _CaseExactStartsWith):
        test = func.substr(column, 1, func.length(value)) == value
    else:  # the value is never empty here, so substr(x, -n) is the last n characters
        test = and_(func.length(column) >= func.length(value), func.substr(column, -func.length(value)) == value)
    # Parenthesized: SQLite compares a boolean function with 1 (`(...) = 1`) where it stands alone.
    return f"({compiler.process(test, **kw)})"


# ---------------------------------------------------------------------------------------------
# Entry points


def compile_filter(text, attributes, schemas=DEFAULT_SCHEMAS):
    """The SQLAlchemy boolean expression of the SCIM filter `text` over `attributes` (a dict of
    lower-cased attribute path -> Attr or MultiValued). Raises InvalidFilter, and nothing else,
    for any text that is not a filter this mapping can answer."""
    if not isinstance(text, str):
        raise InvalidFilter("the filter is a string")
    if len(text) > MAX_LENGTH:
        raise InvalidFilter(f"the filter is longer than {MAX_LENGTH} characters")
    compiler = _Compiler(attributes, schemas)
    tree = _Parser(text).parse()
    try:
        return compiler.compile(tree, compiler.top)
    except RecursionError:  # depth is bounded by MAX_DEPTH; defensive
        raise InvalidFilter("the filter is too complex") from None


def compile_sort(sort_by, attributes, schemas=DEFAULT_SCHEMAS):
    """The expression to order by for the sortBy `sort_by`: a single-valued attribute (lower() of
    it for a case-insensitive string). Raises InvalidSort (an InvalidFilter) otherwise."""
    if not isinstance(sort_by, str) or not sort_by.strip() or len(sort_by) > MAX_LENGTH:
        raise InvalidSort("sortBy is an attribute path")
    try:
        tokens = _tokenize(sort_by)
    except InvalidFilter as invalid:
        raise InvalidSort(f"sortBy is an attribute path: {invalid.message}") from None
    if len(tokens) != 2 or tokens[0].kind != "word":
        raise InvalidSort(f"sortBy is one attribute path, not {_show(sort_by)}")
    compiler = _Compiler(attributes, schemas)
    try:
        path = _parse_path(tokens[0], None)
        target = compiler.resolve(path)
    except InvalidFilter as invalid:
        raise InvalidSort(invalid.message.replace("filtered on", "sorted on")) from None
    if isinstance(target, tuple):
        raise InvalidSort(f"{_show(sort_by)} is multi-valued: sorting by it is not supported")
    if isinstance(target, _Complex):
        raise InvalidSort(f"{_show(sort_by)} is a complex attribute: sort by one of its sub-attributes")
    if target.type in ("string", "reference", "id") and not target.case_exact:
        return func.lower(target.expression)
    return target.expression


def sort_order_clauses(expression, descending=False):
    """ORDER BY clauses for `expression` (from compile_sort) in RFC 7644's order: resources
    without a value last when ascending, first when descending, on SQLite and PostgreSQL alike."""
    missing = case((expression.is_(None), 1), else_=0)
    if descending:
        return missing.desc(), expression.desc()
    return missing.asc(), expression.asc()
