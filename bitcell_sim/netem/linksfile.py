"""The links file: the JSON list of ``LinkSpec`` the devnet writes and the emulator reads.

``links_to_json`` / ``links_from_json`` convert a list of specs to and from text;
``write_links_file`` / ``read_links_file`` do the same on a path. Unknown keys, duplicate link
names and duplicate listen addresses are errors naming where they are (``links[2].params``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from bitcell_sim.errors import NetemError
from bitcell_sim.netem.params import LinkSpec
from bitcell_sim.topology.links import LinkParams

LINKS_FILE_VERSION = 1

_SPEC_KEYS = {"name", "listen_host", "listen_port", "target_host", "target_port", "seed", "params"}
_SPEC_REQUIRED = {"name", "listen_port", "target_port"}
_PARAM_KEYS = {
    "latency_s",
    "jitter_s",
    "jitter_distribution",
    "bandwidth_bps",
    "extra_latency_s",
    "partitioned",
}


def check_keys(
    data: Mapping[str, Any],
    allowed: AbstractSet[str],
    required: AbstractSet[str] = frozenset(),
    where: str = "",
) -> None:
    """Raise NetemError naming the keys of a JSON object not in ``allowed``, else those of
    ``required`` it lacks; the message is prefixed with ``where`` if given."""
    prefix = f"{where}: " if where else ""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise NetemError(f"{prefix}unknown key(s) {', '.join(map(repr, unknown))}")
    missing = sorted(required - set(data))
    if missing:
        raise NetemError(f"{prefix}missing key(s) {', '.join(map(repr, missing))}")


def params_to_dict(params: LinkParams) -> dict[str, Any]:
    """The JSON object of one ``LinkParams`` (every field, bandwidth null when unlimited)."""
    return {
        "latency_s": params.latency_s,
        "jitter_s": params.jitter_s,
        "jitter_distribution": params.jitter_distribution,
        "bandwidth_bps": params.bandwidth_bps,
        "extra_latency_s": params.extra_latency_s,
        "partitioned": params.partitioned,
    }


def params_from_dict(data: object, where: str = "params") -> LinkParams:
    """Build ``LinkParams`` from a JSON object; errors are prefixed with ``where``."""
    if not isinstance(data, Mapping):
        raise NetemError(f"{where}: expected an object, got {type(data).__name__}")
    check_keys(data, _PARAM_KEYS, where=where)
    try:
        return LinkParams(**data)
    except NetemError as exc:
        raise NetemError(f"{where}: {exc}") from None


def spec_to_dict(spec: LinkSpec) -> dict[str, Any]:
    """The JSON object of one ``LinkSpec``."""
    return {
        "name": spec.name,
        "listen_host": spec.listen_host,
        "listen_port": spec.listen_port,
        "target_host": spec.target_host,
        "target_port": spec.target_port,
        "seed": spec.seed,
        "params": params_to_dict(spec.params),
    }


def spec_from_dict(data: object, where: str = "link") -> LinkSpec:
    """Build a ``LinkSpec`` from a JSON object; errors are prefixed with ``where``."""
    if not isinstance(data, Mapping):
        raise NetemError(f"{where}: expected an object, got {type(data).__name__}")
    check_keys(data, _SPEC_KEYS, _SPEC_REQUIRED, where)
    fields = {key: value for key, value in data.items() if key != "params"}
    params = params_from_dict(data.get("params", {}), f"{where}.params")
    try:
        return LinkSpec(params=params, **fields)
    except NetemError as exc:
        raise NetemError(f"{where}: {exc}") from None


def check_unique(specs: Sequence[LinkSpec]) -> None:
    """Raise NetemError if two specs share a name or a fixed (non-zero) listen address."""
    names: dict[str, int] = {}
    addresses: dict[tuple[str, int], str] = {}
    for index, spec in enumerate(specs):
        if spec.name in names:
            first = names[spec.name]
            raise NetemError(
                f"links[{index}]: duplicate link name {spec.name!r} (also links[{first}])"
            )
        names[spec.name] = index
        address = (spec.listen_host, spec.listen_port)
        if spec.listen_port != 0 and address in addresses:
            raise NetemError(
                f"links[{index}]: link {spec.name!r} listens on {spec.listen_host}:"
                f"{spec.listen_port}, already used by link {addresses[address]!r}"
            )
        addresses[address] = spec.name


def links_to_json(specs: Sequence[LinkSpec]) -> str:
    """Serialise specs to the links-file text (a versioned object, stable key order)."""
    check_unique(specs)
    document = {"version": LINKS_FILE_VERSION, "links": [spec_to_dict(s) for s in specs]}
    return json.dumps(document, indent=2) + "\n"


def links_from_json(text: str, source: str = "<links>") -> list[LinkSpec]:
    """Parse links-file text; every error message starts with ``source``."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NetemError(f"{source}: not valid JSON: {exc}") from None
    try:
        if not isinstance(document, dict):
            raise NetemError(f"expected an object with 'links', got {type(document).__name__}")
        check_keys(document, {"version", "links"})
        version = document.get("version")
        if version != LINKS_FILE_VERSION:
            raise NetemError(
                f"version={version!r} is not supported (expected {LINKS_FILE_VERSION})"
            )
        raw_links = document.get("links")
        if not isinstance(raw_links, list):
            raise NetemError(f"links={raw_links!r} must be a list")
        specs = [spec_from_dict(item, f"links[{i}]") for i, item in enumerate(raw_links)]
        check_unique(specs)
    except NetemError as exc:
        raise NetemError(f"{source}: {exc}") from None
    return specs


def write_links_file(path: str | Path, specs: Sequence[LinkSpec]) -> Path:
    """Write specs to ``path`` (atomically: a temporary file renamed into place)."""
    target = Path(path)
    text = links_to_json(specs)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)
    return target


def read_links_file(path: str | Path) -> list[LinkSpec]:
    """Read and validate a links file."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise NetemError(f"{source}: cannot read links file: {exc.strerror or exc}") from None
    return links_from_json(text, str(source))
