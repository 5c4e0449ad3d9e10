"""A field check of the Chaos Mesh objects we export, as JSON Schemas.

Written from Chaos Mesh 2.x's published CRDs (config/crd/bases/chaos-mesh.org_{networkchaos,
podchaos,stresschaos,workflows}.yaml: field names, types, enums and required fields of the specs)
and its documented Workflow format (entry, templates of templateType Serial / Parallel / Suspend
/ <Kind>Chaos with deadline, children and the embedded spec). Stricter than the CRDs in one
way: unknown fields are errors here, where the API server would silently prune them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

MODES = ["one", "all", "fixed", "fixed-percent", "random-max-percent"]
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

SELECTOR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "namespaces": {"type": "array", "items": {"type": "string"}},
        "nodes": {"type": "array", "items": {"type": "string"}},
        "pods": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "labelSelectors": STRING_MAP,
        "annotationSelectors": STRING_MAP,
        "fieldSelectors": STRING_MAP,
        "nodeSelectors": STRING_MAP,
        "podPhaseSelectors": {"type": "array", "items": {"type": "string"}},
    },
}
POD_SELECTOR = {
    "selector": SELECTOR,
    "mode": {"enum": MODES},
    "value": {"type": "string"},
}
DURATION = {"type": "string", "pattern": GO_DURATION}

NETWORK_SPEC: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "mode", "selector"],
    "properties": {
        **POD_SELECTOR,
        "action": {
            "enum": ["netem", "delay", "loss", "duplicate", "corrupt", "partition", "bandwidth"]
        },
        "direction": {"enum": ["to", "from", "both", ""]},
        "duration": DURATION,
        "delay": {
            "type": "object",
            "additionalProperties": False,
            "required": ["latency"],
            "properties": {
                "latency": DURATION,
                "jitter": DURATION,
                "correlation": {"type": "string"},
            },
        },
        "target": {
            "type": "object",
            "additionalProperties": False,
            "required": ["mode", "selector"],
            "properties": POD_SELECTOR,
        },
    },
}
POD_SPEC: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action", "mode", "selector"],
    "properties": {
        **POD_SELECTOR,
        "action": {"enum": ["pod-kill", "pod-failure", "container-kill"]},
        "duration": DURATION,
        "gracePeriod": {"type": "integer", "minimum": 0},
        "containerNames": {"type": "array", "items": {"type": "string"}},
    },
}
STRESS_SPEC: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["mode", "selector", "stressors"],
    "properties": {
        **POD_SELECTOR,
        "duration": DURATION,
        "stressors": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "cpu": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["workers"],
                    "properties": {
                        "workers": {"type": "integer", "minimum": 1, "maximum": 8192},
                        "load": {"type": "integer", "minimum": 0, "maximum": 100},
                    },
                }
            },
        },
    },
}
SPECS = {"NetworkChaos": NETWORK_SPEC, "PodChaos": POD_SPEC, "StressChaos": STRESS_SPEC}
EMBED = {"NetworkChaos": "networkChaos", "PodChaos": "podChaos", "StressChaos": "stressChaos"}

TEMPLATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "templateType"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "templateType": {"enum": ["Serial", "Parallel", "Suspend", *SPECS]},
        "deadline": DURATION,
        "children": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        **{EMBED[kind]: spec for kind, spec in SPECS.items()},
    },
}
WORKFLOW_SPEC: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["entry", "templates"],
    "properties": {
        "entry": {"type": "string"},
        "templates": {"type": "array", "items": TEMPLATE, "minItems": 1},
    },
}


def _object_schema(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "chaos-mesh.org/v1alpha1"},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name", "namespace"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"}
                },
            },
            "spec": spec,
        },
    }


@cache
def _validator(kind: str) -> Any:
    """The validator of one kind, its schema checked once (``jsonschema.validate`` would check
    it again for every object: most of the time of a large export's check)."""
    schema = _object_schema(kind, WORKFLOW_SPEC if kind == "Workflow" else SPECS[kind])
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check_chaos_object(obj: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``obj`` is a well-formed Chaos Mesh object; a
    Workflow's children must name templates, and each chaos template embeds its own kind."""
    kind = obj.get("kind")
    if kind != "Workflow" and kind not in SPECS:
        raise jsonschema.ValidationError(f"unexpected Chaos Mesh kind {kind!r}")
    error = best_match(_validator(str(kind)).iter_errors(obj))
    if error is not None:
        raise error
    if kind != "Workflow":
        return
    templates = {t["name"]: t for t in obj["spec"]["templates"]}
    if len(templates) != len(obj["spec"]["templates"]):
        raise jsonschema.ValidationError("template names repeat")
    if obj["spec"]["entry"] not in templates:
        raise jsonschema.ValidationError("entry names no template")
    for template in templates.values():
        for child in template.get("children", []):
            if child not in templates:
                raise jsonschema.ValidationError(f"child {child!r} names no template")
        kind_ = template["templateType"]
        if kind_ in SPECS and EMBED[kind_] not in template:
            raise jsonschema.ValidationError(f"template {template['name']} lacks {EMBED[kind_]}")
