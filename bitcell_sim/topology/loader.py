"""Reading and writing topology files.

:func:`load_topology` turns a YAML file into a :class:`~bitcell_sim.topology.schema.Topology`,
or raises :class:`~bitcell_sim.errors.TopologyError` listing every problem as
``path.to.field (line N): message``. Before the schema sees anything, the YAML itself is
checked (:func:`yaml_problems`): no file over ``MAX_FILE_BYTES``, no duplicate key, no
nesting deeper than ``MAX_NESTING``, no integer of more than ``MAX_INT_DIGITS`` digits, no
non-finite number, no alias expansion beyond ``MAX_VALUES`` values. :func:`dump_topology`
writes the resolved topology back (defaults filled in, units spelled out), which loads again.
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bitcell_sim.errors import TopologyError
from bitcell_sim.topology.schema import FAULT_KINDS, FROM_FILE, Topology

#: The largest topology file read (a generated 10,000-node topology is about 1 MB).
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Mappings and lists inside each other (a topology needs 5).
MAX_NESTING = 32
MAX_INT_DIGITS = 30
#: Values after YAML aliases are expanded (each alias repeats what it names).
MAX_VALUES = 1_000_000

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


def _too_large(size: int, what: str) -> str:
    return (
        f"{what} is {size:,} bytes: more than the {MAX_FILE_BYTES // (1024 * 1024)} MiB a "
        "topology file may have"
    )


def load_topology(path: str | Path) -> Topology:
    """Load and validate a topology file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TopologyError([("", _too_large(size, str(path)))])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TopologyError([("", f"no such file: {path}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError([("", f"cannot read {path}: {exc}")]) from None
    return parse_topology(text, source=str(path))


def _compose(text: str, source: str | None) -> tuple[yaml.Node | None, Any]:
    """The YAML node tree and the data built from it, after ``yaml_problems``."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            tree = loader.get_single_node()
        except RecursionError:
            raise TopologyError(
                [("", f"the YAML is nested too deeply (more than {MAX_NESTING} levels)")],
                source,
            ) from None
        problems = yaml_problems(tree)
        if problems:
            raise TopologyError(problems, source)
        return tree, None if tree is None else loader.construct_document(tree)
    finally:
        loader.dispose()


def parse_topology(text: str, source: str | None = None) -> Topology:
    """Validate a topology given as YAML text."""
    if len(text) > MAX_FILE_BYTES:
        raise TopologyError([("", _too_large(len(text.encode("utf-8")), "the text"))], source)
    try:
        tree, data = _compose(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TopologyError([("", f"YAML syntax error{where}: {problem}")], source) from None
    if not isinstance(data, dict):
        raise TopologyError(
            [("", "a topology must be a mapping of sections (general, nodes, …)")], source
        )
    try:
        return Topology.model_validate(data, context={FROM_FILE: True})
    except ValidationError as exc:
        problems = [_describe(error, tree) for error in exc.errors()]
        raise TopologyError(problems, source) from None
    except TopologyError as exc:
        raise TopologyError(
            [(_with_line(path, _path_parts(path), tree), msg) for path, msg in exc.problems], source
        ) from None


def dump_topology(topology: Topology) -> str:
    """The resolved topology as YAML: every default filled in, quantities with units."""
    data = topology.model_dump(mode="json", by_alias=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# ---- the YAML itself ----------------------------------------------------------------------


def _children(node: yaml.Node) -> list[tuple[str, yaml.Node]]:
    """(path suffix, child) of a mapping's values or a sequence's items."""
    if isinstance(node, yaml.MappingNode):
        return [
            (f".{k.value}" if isinstance(k, yaml.ScalarNode) else ".?", v) for k, v in node.value
        ]
    if isinstance(node, yaml.SequenceNode):
        return [(f"[{i}]", item) for i, item in enumerate(node.value)]
    return []


def _scalar_problem(node: yaml.ScalarNode) -> str | None:
    text = str(node.value).replace("_", "")
    if node.tag == _INT_TAG:
        digits = sum(c.isdigit() for c in text)
        if digits > MAX_INT_DIGITS:
            return f"an integer of {digits:,} digits is too large for any field"
    elif node.tag == _FLOAT_TAG and ":" not in text:  # 1:30.5 is YAML 1.1's base 60
        lowered = text.lower()
        if lowered.endswith(("inf", "nan")) or not math.isfinite(float(lowered)):
            return f"{node.value!r} is not a finite number"
    return None


def yaml_problems(root: yaml.Node | None) -> list[tuple[str, str]]:
    """What is wrong with the YAML node tree before any schema: duplicate keys (with the line
    of the first), nesting deeper than ``MAX_NESTING``, oversized integers, non-finite floats,
    alias cycles and expansion beyond ``MAX_VALUES``. Each aliased node is looked at once."""
    problems: list[tuple[str, str]] = []
    if root is None:
        return problems
    expanded: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str, int, bool]] = [(root, "", 1, False)]
    while stack:
        node, path, depth, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            expanded[key] = 1 + sum(expanded.get(id(c), 1) for _, c in _children(node))
            continue
        if key in open_nodes:
            problems.append((path, "a YAML alias refers to a value that contains it (a cycle)"))
            continue
        if key in expanded:
            continue
        where = f"{path.lstrip('.') or '(top)'} (line {node.start_mark.line + 1})"
        if isinstance(node, yaml.ScalarNode):
            problem = _scalar_problem(node)
            if problem:
                problems.append((where, problem))
            expanded[key] = 1
            continue
        if depth > MAX_NESTING:
            problems.append((where, f"nested deeper than {MAX_NESTING} levels"))
            expanded[key] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, _ in node.value:
                if not isinstance(k, yaml.ScalarNode) or k.value == "<<":
                    continue
                line = k.start_mark.line + 1
                if k.value in first:
                    dup = f"{path.lstrip('.')}.{k.value}".lstrip(".")
                    problems.append(
                        (
                            f"{dup} (line {line})",
                            f"duplicate key {k.value!r} (first at line {first[k.value]})",
                        )
                    )
                else:
                    first[k.value] = line
        open_nodes.add(key)
        stack.append((node, path, depth, True))
        for suffix, child in reversed(_children(node)):
            stack.append((child, path + suffix, depth + 1, False))
    total = expanded.get(id(root), 1)
    if total > MAX_VALUES:
        problems.append(
            (
                "",
                f"the YAML expands to {total:,} values (aliases repeat what they name); "
                f"at most {MAX_VALUES:,}",
            )
        )
    return problems


# ---- error rendering ---------------------------------------------------------------------


def _describe(error: ErrorDetails, tree: yaml.Node | None) -> tuple[str, str]:
    loc = _strip_union_tags(error["loc"])
    path = _format_path(loc)
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1])
        message = f"unknown key {loc[-1]!r}" + (
            f" (allowed: {', '.join(allowed)})" if allowed else ""
        )
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "union_tag_not_found":
        message = f"missing 'kind' (one of {', '.join(FAULT_KINDS)})"
    elif kind == "union_tag_invalid":
        message = (
            f"unknown fault kind {error['input'].get('kind')!r} (one of {', '.join(FAULT_KINDS)})"
        )
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return _with_line(path, loc, tree), message


def _strip_union_tags(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the discriminator value pydantic puts in a fault's path (faults.0.node_down.x)."""
    out: list[int | str] = []
    for i, part in enumerate(loc):
        if i == 2 and loc[0] == "faults" and part in FAULT_KINDS:
            continue
        out.append(part)
    return tuple(out)


def _format_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _path_parts(path: str) -> tuple[int | str, ...]:
    parts: list[int | str] = []
    for chunk in path.replace("[", ".[").split("."):
        if not chunk:
            continue
        parts.append(int(chunk[1:-1]) if chunk.startswith("[") else chunk)
    return tuple(parts)


def _with_line(path: str, loc: tuple[int | str, ...], tree: yaml.Node | None) -> str:
    line = _line_of(loc, tree)
    return f"{path} (line {line})" if path and line else path


def _line_of(loc: tuple[int | str, ...], node: yaml.Node | None) -> int | None:
    """The 1-based line of the deepest part of ``loc`` found in the composed YAML tree."""
    best = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            key = next((k for k, v in node.value if k.value == str(part)), None)
            if key is None:
                break
            best, node = key.start_mark.line + 1, match
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            break
    return best


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys a section accepts, found by walking the schema along the error's path."""
    model: Any = Topology
    for part in loc:
        model = _step(model, part)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _step(annotation: Any, part: int | str) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return _unwrap(field.annotation)
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict:
        return _unwrap(args[1])
    if origin is tuple and isinstance(part, int):
        return _unwrap(args[0])
    if origin in (typing.Union, types.UnionType):
        members = [_unwrap(a) for a in args]
        # A fault's path names its kind (faults.0.node_down.x): pick that member of the union.
        for member in members:
            kind = getattr(member, "model_fields", {}).get("kind")
            if kind is not None and typing.get_args(kind.annotation) == (part,):
                return member
        return next((found for m in members if (found := _step(m, part)) is not None), None)
    return None


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        if len(non_none) == 1:
            return _unwrap(non_none[0])
    return annotation
