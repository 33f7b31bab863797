"""A small, honest GraphQL: parser, validator and executor for the loopback Shopify twin.

It covers what a client of Shopify's Admin API sends: one operation per document (`query`
or `mutation`, named or not, with variable definitions), fields with aliases and arguments
(variables, strings and block strings, numbers, booleans, null, enums, lists, objects),
nested selection sets and inline fragments (`... on BulkOperation`). Fragment definitions,
directives and subscriptions are refused with an error rather than half-supported. Input
object types (a mutation's `DiscountCodeBasicInput`) are checked field by field: an unknown
field, a missing required one or a value of the wrong type is `variableMismatch`.

Everything is validated against a schema before anything runs, the way Shopify does: an
unknown field or argument, a selection on a scalar, a missing selection on an object, an
undefined variable are errors (`undefinedField`, `argumentNotAccepted`, ...), with the
field's line and column, and no data. Values are Python dicts shaped like the API's
objects (each with `__typename`); root fields and connection providers are callables.

Connections (`...Connection` types) are paginated here: `first` (1..250, required outside
bulk queries) and `after` (an opaque cursor naming the last id seen); their nodes are
ordered by numeric id, so a page boundary never moves when data changes between pages.
`requested_cost` is the twin's reading of Shopify's calculated query cost: scalars and
enums 0, objects 1, connections 2 + first x node cost, lists first x element cost,
mutations 10.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_PAGE = 250

# -- lexer ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r'''
    (?P<ws>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<block>"""(?:[^"\\]|\\"""|\\.|"(?!""))*""")
  | (?P<string>"(?:[^"\\\n\r]|\\.)*")
  | (?P<spread>\.\.\.)
  | (?P<punct>[!$():=@\[\]{}|&])
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
''', re.VERBOSE)


class GraphQLError(Exception):
    """One error as Shopify reports it: a message, where, and `extensions.code`."""

    def __init__(self, message: str, line: int = 0, column: int = 0, code: str | None = None,
                 path: list | None = None, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.line, self.column = line, column
        self.code = code
        self.path = path
        self.extensions = extensions

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.line:
            out["locations"] = [{"line": self.line, "column": self.column}]
        if self.path:
            out["path"] = self.path
        ext = dict(self.extensions)
        if self.code:
            ext["code"] = self.code
        if ext:
            out["extensions"] = ext
        return out


@dataclass
class Token:
    kind: str
    value: str
    line: int
    column: int


def _unescape(text: str) -> str:
    return json.loads(text)


def _block_string(raw: str) -> str:
    body = raw[3:-3].replace('\\"""', '"""')
    lines = body.splitlines()
    indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines[1:] if ln.strip()]
    common = min(indents) if indents else 0
    lines = lines[:1] + [ln[common:] for ln in lines[1:]]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def tokenize(source: str) -> list[Token]:
    tokens, pos, line, line_start = [], 0, 1, 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if not m:
            raise GraphQLError(f"Parse error on \"{source[pos]}\" ({source[pos:pos + 10]!r})", line,
                               pos - line_start + 1, code="parseError")
        kind, text = m.lastgroup or "", m.group()
        if kind != "ws":
            value = _block_string(text) if kind == "block" else _unescape(text) if kind == "string" else text
            tokens.append(Token("string" if kind == "block" else kind, value, line, pos - line_start + 1))
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = pos + text.rfind("\n") + 1
        pos = m.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


# -- AST and parser ------------------------------------------------------------------------------


@dataclass
class Var:
    name: str


@dataclass
class EnumValue:
    name: str


@dataclass
class Field:
    name: str
    alias: str | None
    args: dict[str, Any]
    selections: list[Any] | None
    line: int
    column: int

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class InlineFragment:
    type_condition: str | None
    selections: list[Any]
    line: int
    column: int


@dataclass
class Operation:
    kind: str  # query | mutation
    name: str | None
    variables: dict[str, tuple[str, Any]]  # name -> (type, default)
    selections: list[Any]


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, what: str) -> GraphQLError:
        t = self.tok
        found = "end of file" if t.kind == "eof" else f"\"{t.value}\""
        return GraphQLError(f"Parse error on {found}: expected {what}", t.line, t.column, code="parseError")

    def take(self, kind: str, value: str | None = None) -> Token:
        t = self.tok
        if t.kind != kind or (value is not None and t.value != value):
            raise self.fail(value or kind)
        self.i += 1
        return t

    def peek(self, kind: str, value: str | None = None) -> bool:
        t = self.tok
        return t.kind == kind and (value is None or t.value == value)

    def document(self) -> Operation:
        if self.peek("punct", "{"):
            op = Operation("query", None, {}, self.selection_set())
        elif self.peek("name", "query") or self.peek("name", "mutation"):
            kind = self.take("name").value
            name = self.take("name").value if self.peek("name") else None
            variables = self.variable_definitions() if self.peek("punct", "(") else {}
            if self.peek("punct", "@"):
                raise GraphQLError("Directives are not supported by the loopback twin", self.tok.line,
                                   self.tok.column, code="parseError")
            op = Operation(kind, name, variables, self.selection_set())
        elif self.peek("name", "fragment") or self.peek("name", "subscription"):
            t = self.tok
            raise GraphQLError(f"{t.value} definitions are not supported by the loopback twin", t.line, t.column,
                               code="parseError")
        else:
            raise self.fail("a query or mutation")
        if not self.peek("eof"):
            t = self.tok
            raise GraphQLError("Only one operation per document is supported by the loopback twin", t.line,
                               t.column, code="parseError")
        return op

    def variable_definitions(self) -> dict[str, tuple[str, Any]]:
        self.take("punct", "(")
        out = {}
        while not self.peek("punct", ")"):
            self.take("punct", "$")
            name = self.take("name").value
            self.take("punct", ":")
            type_ = self.type_ref()
            default = None
            if self.peek("punct", "="):
                self.i += 1
                default = self.value(const=True)
            out[name] = (type_, default)
        self.take("punct", ")")
        return out

    def type_ref(self) -> str:
        if self.peek("punct", "["):
            self.i += 1
            inner = self.type_ref()
            self.take("punct", "]")
            text = f"[{inner}]"
        else:
            text = self.take("name").value
        if self.peek("punct", "!"):
            self.i += 1
            text += "!"
        return text

    def selection_set(self) -> list[Any]:
        self.take("punct", "{")
        out = []
        while not self.peek("punct", "}"):
            if self.peek("spread"):
                t = self.take("spread")
                if not self.peek("name", "on"):
                    raise GraphQLError("Named fragments are not supported by the loopback twin", t.line, t.column,
                                       code="parseError")
                self.i += 1
                cond = self.take("name").value
                out.append(InlineFragment(cond, self.selection_set(), t.line, t.column))
                continue
            t = self.take("name")
            alias, name = None, t.value
            if self.peek("punct", ":"):
                self.i += 1
                alias, name = name, self.take("name").value
            args = self.arguments() if self.peek("punct", "(") else {}
            if self.peek("punct", "@"):
                raise GraphQLError("Directives are not supported by the loopback twin", self.tok.line,
                                   self.tok.column, code="parseError")
            sub = self.selection_set() if self.peek("punct", "{") else None
            out.append(Field(name, alias, args, sub, t.line, t.column))
        self.take("punct", "}")
        if not out:
            raise self.fail("a field")
        return out

    def arguments(self) -> dict[str, Any]:
        self.take("punct", "(")
        out = {}
        while not self.peek("punct", ")"):
            name = self.take("name").value
            self.take("punct", ":")
            out[name] = self.value()
        self.take("punct", ")")
        return out

    def value(self, const: bool = False) -> Any:
        t = self.tok
        if t.kind == "punct" and t.value == "$" and not const:
            self.i += 1
            return Var(self.take("name").value)
        if t.kind == "string":
            self.i += 1
            return t.value
        if t.kind == "number":
            self.i += 1
            return float(t.value) if any(c in t.value for c in ".eE") else int(t.value)
        if t.kind == "name":
            self.i += 1
            if t.value in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[t.value]
            return EnumValue(t.value)
        if t.kind == "punct" and t.value == "[":
            self.i += 1
            items = []
            while not self.peek("punct", "]"):
                items.append(self.value(const))
            self.i += 1
            return items
        if t.kind == "punct" and t.value == "{":
            self.i += 1
            obj = {}
            while not self.peek("punct", "}"):
                key = self.take("name").value
                self.take("punct", ":")
                obj[key] = self.value(const)
            self.i += 1
            return obj
        raise self.fail("a value")


def parse(source: str) -> Operation:
    if not isinstance(source, str) or not source.strip():
        raise GraphQLError("No query string was present", code="parseError")
    return _Parser(source).document()


# -- schema --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDef:
    type: str  # e.g. "String", "[String!]!", "OrderConnection!"
    args: dict[str, str] = field(default_factory=dict)  # name -> type


def named(type_: str) -> str:
    return type_.replace("[", "").replace("]", "").replace("!", "")


def is_list(type_: str) -> bool:
    return type_.startswith("[")


@dataclass
class Schema:
    types: dict[str, dict[str, FieldDef]]  # object and interface types -> fields
    scalars: set[str]
    enums: dict[str, set[str]]
    interfaces: dict[str, set[str]]  # interface -> object types implementing it
    query: str = "QueryRoot"
    mutation: str = "Mutation"
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # input object types -> field -> type

    def kind(self, name: str) -> str:
        if name in self.scalars:
            return "scalar"
        if name in self.enums:
            return "enum"
        if name in self.interfaces:
            return "interface"
        if name in self.types:
            return "connection" if name.endswith("Connection") else "object"
        raise KeyError(name)


#: Every connection type has these fields; its node type is the name without "Connection".
def connection_types(node_types: list[str]) -> dict[str, dict[str, FieldDef]]:
    out: dict[str, dict[str, FieldDef]] = {
        "PageInfo": {"hasNextPage": FieldDef("Boolean!"), "hasPreviousPage": FieldDef("Boolean!"),
                     "startCursor": FieldDef("String"), "endCursor": FieldDef("String")},
    }
    for node in node_types:
        out[f"{node}Connection"] = {"edges": FieldDef(f"[{node}Edge!]!"), "nodes": FieldDef(f"[{node}!]!"),
                                    "pageInfo": FieldDef("PageInfo!")}
        out[f"{node}Edge"] = {"cursor": FieldDef("String!"), "node": FieldDef(f"{node}!")}
    return out


CONNECTION_ARGS = {"first": "Int", "after": "String", "last": "Int", "before": "String", "reverse": "Boolean"}


# -- validation ----------------------------------------------------------------------------------


def _arg_value(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, Var):
        return variables.get(value.name)
    if isinstance(value, EnumValue):
        return value.name
    if isinstance(value, list):
        return [_arg_value(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _arg_value(v, variables) for k, v in value.items()}
    return value


def _vars_used(value: Any) -> list[str]:
    if isinstance(value, Var):
        return [value.name]
    if isinstance(value, list):
        return [n for v in value for n in _vars_used(v)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _vars_used(v)]
    return []


def _check_type(value: Any, type_: str, schema: Schema) -> bool:
    """Whether a (resolved) argument value fits an input type (scalars and enums, lists of them)."""
    if value is None:
        return not type_.endswith("!")
    base = type_.rstrip("!")
    if base.startswith("["):
        inner = base[1:-1]
        items = value if isinstance(value, list) else [value]
        return all(_check_type(v, inner, schema) for v in items)
    if base in ("Int", "UnsignedInt64"):
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "Float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base == "Boolean":
        return isinstance(value, bool)
    if base in ("String", "ID", "DateTime", "URL", "Decimal", "Money"):
        return isinstance(value, str)
    if base in schema.enums:
        return isinstance(value, str) and value in schema.enums[base]
    if base in schema.inputs:  # an input object: known fields only, each of its type, required ones present
        fields = schema.inputs[base]
        if not isinstance(value, dict) or set(value) - set(fields):
            return False
        return all(_check_type(value.get(name), type_, schema) for name, type_ in fields.items())
    return True


def input_problems(value: Any, type_: str, schema: Schema, path: str = "") -> list[str]:
    """Where an input value departs from its type (for an error message that names the field)."""
    base = type_.rstrip("!")
    if value is None:
        return [f"{path or 'value'}: Expected value to not be null"] if type_.endswith("!") else []
    if base in schema.inputs and isinstance(value, dict):
        fields = schema.inputs[base]
        out = [f"{path}.{k}".lstrip(".") + f": Field is not defined on {base}" for k in value if k not in fields]
        for name, field_type in fields.items():
            out += input_problems(value.get(name), field_type, schema, f"{path}.{name}".lstrip("."))
        return out
    return [] if _check_type(value, type_, schema) else [f"{path or 'value'}: Could not coerce value to {base}"]


def validate(op: Operation, schema: Schema, variables: dict[str, Any] | None = None,
             bulk: bool = False) -> list[GraphQLError]:
    """Every problem with `op` against `schema`, before anything runs (empty: valid)."""
    variables = variables or {}
    errors: list[GraphQLError] = []
    root = schema.mutation if op.kind == "mutation" else schema.query
    used: set[str] = set()
    for name, (type_, default) in op.variables.items():
        if named(type_) not in schema.scalars and named(type_) not in schema.enums and named(type_) not in schema.inputs:
            errors.append(GraphQLError(f"{named(type_)} isn't a defined input type (on ${name})",
                                       code="variableRequiresValidType"))
        value = variables.get(name, default)
        if value is None and type_.endswith("!"):
            errors.append(GraphQLError(f"Variable ${name} of type {type_} was provided invalid value",
                                       code="variableMismatch", problems=[{"path": [], "explanation":
                                                                           "Expected value to not be null"}]))
        elif value is not None and not _check_type(value, type_, schema):
            problems = [{"path": p.split(": ")[0].split("."), "explanation": p.split(": ", 1)[1]}
                        for p in input_problems(value, type_, schema)]
            errors.append(GraphQLError(f"Variable ${name} of type {type_} was provided invalid value",
                                       code="variableMismatch", **({"problems": problems} if problems else {})))

    def walk(selections: list[Any], type_name: str, path: list[str]) -> None:
        for sel in selections:
            if isinstance(sel, InlineFragment):
                cond = sel.type_condition or type_name
                if cond not in schema.types:
                    errors.append(GraphQLError(f"No such type {cond}, so it can't be a fragment condition",
                                               sel.line, sel.column, code="undefinedType", typeName=cond))
                    continue
                possible = schema.interfaces.get(type_name, {type_name})
                if cond != type_name and cond not in possible:
                    errors.append(GraphQLError(f"Fragment on {cond} can't be spread inside {type_name}",
                                               sel.line, sel.column, code="fragmentSpreadImpossible"))
                    continue
                walk(sel.selections, cond, path + [f"... on {cond}"])
                continue
            fields = schema.types.get(type_name, {})
            if sel.name == "__typename":
                continue
            fdef = fields.get(sel.name)
            here = path + [sel.key]
            if fdef is None:
                errors.append(GraphQLError(f"Field '{sel.name}' doesn't exist on type '{type_name}'", sel.line,
                                           sel.column, code="undefinedField", path=here, typeName=type_name,
                                           fieldName=sel.name))
                continue
            for arg, value in sel.args.items():
                if arg not in fdef.args:
                    errors.append(GraphQLError(f"Field '{sel.name}' doesn't accept argument '{arg}'", sel.line,
                                               sel.column, code="argumentNotAccepted", path=here, name=sel.name,
                                               typeName="Field", argumentName=arg))
                    continue
                for var in _vars_used(value):
                    used.add(var)
                    if var not in op.variables:
                        errors.append(GraphQLError(f"Variable ${var} is used by {op.name or 'anonymous query'} but "
                                                   "not declared", sel.line, sel.column,
                                                   code="variableNotDefined", variableName=var))
                resolved = _arg_value(value, variables)
                if not _check_type(resolved, fdef.args[arg], schema):
                    errors.append(GraphQLError(f"Argument '{arg}' on Field '{sel.name}' has an invalid value "
                                               f"({json.dumps(resolved)}). Expected type '{fdef.args[arg]}'.",
                                               sel.line, sel.column, code="argumentLiteralsIncompatible",
                                               path=here))
            for arg, type_ in fdef.args.items():
                if type_.endswith("!") and arg not in sel.args:
                    errors.append(GraphQLError(f"Field '{sel.name}' is missing required arguments: {arg}",
                                               sel.line, sel.column, code="missingRequiredArguments", path=here))
            target = named(fdef.type)
            kind = schema.kind(target)
            if kind in ("scalar", "enum"):
                if sel.selections is not None:
                    errors.append(GraphQLError(
                        f"Selections can't be made on {'scalars' if kind == 'scalar' else 'enums'} (field "
                        f"'{sel.name}' returns {target} but has selections [{', '.join(_names(sel.selections))}])",
                        sel.line, sel.column, code="selectionMismatch", path=here, nodeName=f"field '{sel.name}'",
                        typeName=target))
                continue
            if sel.selections is None:
                errors.append(GraphQLError(
                    f"Field must have selections (field '{sel.name}' returns {target} but has no selections. Did "
                    f"you mean '{sel.name} {{ ... }}'?)", sel.line, sel.column, code="selectionMismatch", path=here,
                    nodeName=f"field '{sel.name}'", typeName=target))
                continue
            if kind == "connection" and not bulk:
                args = {k: _arg_value(v, variables) for k, v in sel.args.items()}
                if args.get("first") is None and args.get("last") is None:
                    errors.append(GraphQLError("you must provide one of first or last", sel.line, sel.column,
                                               path=here))
                for k in ("first", "last"):
                    if isinstance(args.get(k), int) and not 0 <= args[k] <= MAX_PAGE:
                        errors.append(GraphQLError(f"The {k} argument must be between 0 and {MAX_PAGE}", sel.line,
                                                   sel.column, code="argumentLiteralsIncompatible", path=here))
            walk(sel.selections, target, here)

    if root not in schema.types:
        errors.append(GraphQLError(f"Schema is not configured for {op.kind}s", code="missingRootType"))
    else:
        walk(op.selections, root, [op.kind])
    for name in op.variables:
        if name not in used:
            errors.append(GraphQLError(f"Variable ${name} is declared by {op.name or 'anonymous query'} but not "
                                       "used", code="variableNotUsed", variableName=name))
    return errors


def _names(selections: list[Any]) -> list[str]:
    return [s.name if isinstance(s, Field) else f"... on {s.type_condition}" for s in selections]


# -- cost ----------------------------------------------------------------------------------------


def requested_cost(op: Operation, schema: Schema, variables: dict[str, Any], default_page: int = 1) -> int:
    """The twin's calculated cost of a valid operation (see the module docstring)."""
    if op.kind == "mutation":
        return 10

    def cost(selections: list[Any], type_name: str) -> float:
        total = 0.0
        by_type: dict[str, float] = {}
        for sel in selections:
            if isinstance(sel, InlineFragment):
                by_type[sel.type_condition or type_name] = cost(sel.selections, sel.type_condition or type_name)
                continue
            fdef = schema.types.get(type_name, {}).get(sel.name)
            if fdef is None or sel.selections is None:
                continue
            target = named(fdef.type)
            kind = schema.kind(target)
            args = {k: _arg_value(v, variables) for k, v in sel.args.items()}
            n = args.get("first") or args.get("last") or default_page
            if kind == "connection":
                node_type = target[: -len("Connection")]
                inner = 0.0
                for s in sel.selections:
                    if isinstance(s, Field) and s.name in ("edges", "nodes") and s.selections:
                        node_sel = s.selections if s.name == "nodes" else next(
                            (x.selections for x in s.selections if isinstance(x, Field) and x.name == "node"), [])
                        inner = max(inner, 1 + cost(node_sel or [], node_type))
                total += 2 + n * inner
            elif is_list(fdef.type):
                total += (args.get("first") or 1) * (1 + cost(sel.selections, target))
            else:
                total += 1 + cost(sel.selections, target)
        return total + (max(by_type.values()) if by_type else 0)

    return int(round(cost(op.selections, schema.query)))


def actual_cost(op: Operation, schema: Schema, data: dict[str, Any]) -> int:
    """The cost of what an answer holds: the same reckoning as `requested_cost`, with the nodes and
    list items actually returned instead of `first` (Shopify refunds the difference)."""
    if op.kind == "mutation":
        return 10

    def node_selection(field: Field) -> tuple[str | None, list[Any]]:
        for s in field.selections or []:
            if isinstance(s, Field) and s.name == "nodes":
                return s.key, s.selections or []
            if isinstance(s, Field) and s.name == "edges":
                node = next((x for x in s.selections or [] if isinstance(x, Field) and x.name == "node"), None)
                return s.key, (node.selections or []) if node else []
        return None, []

    def nodes_of(field: Field, value: dict[str, Any]) -> list[Any]:
        for s in field.selections or []:
            if isinstance(s, Field) and s.name == "nodes":
                return value.get(s.key) or []
            if isinstance(s, Field) and s.name == "edges":
                node = next((x for x in s.selections or [] if isinstance(x, Field) and x.name == "node"), None)
                return [edge.get(node.key) for edge in value.get(s.key) or []] if node else []
        return []

    def cost(selections: list[Any], type_name: str, value: Any) -> float:
        if not isinstance(value, dict):
            return 0.0
        total, fragments = 0.0, [0.0]
        for sel in selections:
            if isinstance(sel, InlineFragment):
                fragments.append(cost(sel.selections, sel.type_condition or type_name, value))
                continue
            fdef = schema.types.get(type_name, {}).get(sel.name)
            if fdef is None or sel.selections is None:
                continue
            target = named(fdef.type)
            sub = value.get(sel.key)
            if sub is None:
                continue
            if schema.kind(target) == "connection":
                node_type = target[: -len("Connection")]
                _, node_sel = node_selection(sel)
                total += 2 + sum(1 + cost(node_sel, node_type, n) for n in nodes_of(sel, sub))
            elif is_list(fdef.type):
                total += sum(1 + cost(sel.selections, target, item) for item in sub)
            else:
                total += 1 + cost(sel.selections, target, sub)
        return total + max(fragments)

    return int(round(cost(op.selections, schema.query, data)))


# -- execution -----------------------------------------------------------------------------------


def encode_cursor(item_id: int) -> str:
    return base64.b64encode(json.dumps({"last_id": item_id}).encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        return int(json.loads(base64.b64decode(cursor.encode(), validate=True))["last_id"])
    except (ValueError, KeyError, TypeError):
        raise GraphQLError("Invalid cursor for current pagination sort.", code="argumentLiteralsIncompatible") \
            from None


#: A root field's provider: (args) -> value. A connection's provider returns all nodes in id order.
Resolver = Callable[[dict[str, Any]], Any]


@dataclass
class Executor:
    schema: Schema
    root_values: dict[str, Any]  # root field -> value or resolver
    bulk: bool = False  # connections unpaginated (a bulk query takes every node)

    def run(self, op: Operation, variables: dict[str, Any]) -> dict[str, Any]:
        root = self.schema.mutation if op.kind == "mutation" else self.schema.query
        return self._object(self.root_values, op.selections, root, variables, [], top=True)

    def _object(self, value: dict[str, Any], selections: list[Any], type_name: str, variables: dict[str, Any],
                path: list[Any], top: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        runtime = value.get("__typename", type_name) if isinstance(value, dict) else type_name
        for sel in selections:
            if isinstance(sel, InlineFragment):
                cond = sel.type_condition or runtime
                if cond == runtime or runtime in self.schema.interfaces.get(cond, set()):
                    out.update(self._object(value, sel.selections, runtime, variables, path))
                continue
            if sel.name == "__typename":
                out[sel.key] = runtime
                continue
            fdef = self.schema.types[runtime][sel.name]
            args = {k: _arg_value(v, variables) for k, v in sel.args.items()}
            raw = value.get(sel.name) if isinstance(value, dict) else None
            if callable(raw):
                raw = raw(args)
            out[sel.key] = self._value(raw, fdef, sel, args, variables, path + [sel.key])
        return out

    def _value(self, raw: Any, fdef: FieldDef, sel: Field, args: dict[str, Any], variables: dict[str, Any],
               path: list[Any]) -> Any:
        target = named(fdef.type)
        kind = self.schema.kind(target)
        if raw is None:
            return None
        if kind == "connection":
            return self._connection(raw, target, sel, args, variables, path)
        if is_list(fdef.type):
            items = list(raw)
            if isinstance(args.get("first"), int):
                items = items[: args["first"]]
            if kind in ("scalar", "enum"):
                return items
            return [self._object(item, sel.selections or [], target, variables, path + [i])
                    for i, item in enumerate(items)]
        if kind in ("scalar", "enum"):
            return raw
        return self._object(raw, sel.selections or [], target, variables, path)

    def _connection(self, items: list[dict[str, Any]], type_name: str, sel: Field, args: dict[str, Any],
                    variables: dict[str, Any], path: list[Any]) -> dict[str, Any]:
        node_type = type_name[: -len("Connection")]
        after = args.get("after")
        if after:
            last = decode_cursor(after)
            items = [i for i in items if i["_id"] > last]
        if args.get("reverse"):
            items = list(reversed(items))
        first = args.get("first")
        if self.bulk or first is None:
            page, more = items, False
        else:
            page, more = items[:first], len(items) > first
        out: dict[str, Any] = {}
        for s in sel.selections or []:
            if not isinstance(s, Field):
                continue
            if s.name == "pageInfo":
                info = {"hasNextPage": more, "hasPreviousPage": bool(after),
                        "startCursor": encode_cursor(page[0]["_id"]) if page else None,
                        "endCursor": encode_cursor(page[-1]["_id"]) if page else None}
                out[s.key] = {x.key: info[x.name] for x in s.selections or [] if isinstance(x, Field)}
            elif s.name == "nodes":
                out[s.key] = [self._object(n, s.selections or [], node_type, variables, path + [s.key, i])
                              for i, n in enumerate(page)]
            elif s.name == "edges":
                edges = []
                for i, n in enumerate(page):
                    edge: dict[str, Any] = {}
                    for e in s.selections or []:
                        if isinstance(e, Field) and e.name == "cursor":
                            edge[e.key] = encode_cursor(n["_id"])
                        elif isinstance(e, Field) and e.name == "node":
                            edge[e.key] = self._object(n, e.selections or [], node_type, variables,
                                                       path + [s.key, i, e.key])
                    edges.append(edge)
                out[s.key] = edges
        return out
