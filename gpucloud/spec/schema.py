"""JSON Schema validation of loaded spec data, turning every schema error into a located, hinted Finding."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Iterator, Mapping

from gpucloud.findings import Finding, choices_hint, did_you_mean

_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "null"}


def schema_text() -> str:
    return resources.files("gpucloud").joinpath("data/cluster.schema.json").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(schema_text())


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator, validators

    # JSON Schema counts 2.0 as an integer; a count or a VLAN written 2.0 is a typo, and Python's range() refuses it.
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    strict = validators.extend(Draft202012Validator, type_checker=checker)
    return strict(schema())


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _leaf_errors(errors: Iterable) -> Iterator:
    """Descend into oneOf/anyOf/if-then errors so users see the concrete problem, not 'is not valid under any'.

    A generator: each error becomes a finding and is dropped before the next is made (an error object holds a few
    KB; 190,000 of them at once took 600 MB)."""
    for err in errors:
        if err.validator in ("oneOf", "anyOf") and err.context:
            # Keep the alternatives that got furthest (deepest path), like jsonschema's best_match.
            depth = max(len(e.absolute_path) for e in err.context)
            deepest = [e for e in err.context if len(e.absolute_path) == depth]
            if depth > len(err.absolute_path):
                yield from _leaf_errors(deepest)
            else:
                yield err
        else:
            yield err


def _property_names(subschema: dict) -> list[str]:
    return sorted(k for k in subschema.get("properties", {}))


def _finding(err, raw: Mapping[tuple, str] | None = None) -> Finding:
    path = tuple(err.absolute_path)
    v = err.validator
    inst = err.instance
    if v == "additionalProperties":
        allowed = _property_names(err.schema)
        extras = sorted(set(inst) - set(allowed)) if isinstance(inst, dict) else []
        key = extras[0] if extras else "?"
        return Finding("schema", "error", (*path, key), f"unknown key {key!r}",
                       choices_hint(key, allowed, "keys here"))
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        desc = err.schema.get("properties", {}).get(missing, {}).get("description", "")
        return Finding("schema", "error", path, f"missing required key {missing!r}",
                       f"add '{missing}:'" + (f" ({desc})" if desc else ""))
    if v == "enum":
        choices = [str(c) for c in err.validator_value]
        hint = choices_hint(str(inst), choices, "values")
        if not hint.startswith("did you mean"):
            hint = "one of: " + ", ".join(choices)
        return Finding("schema", "error", path, f"{_describe(inst)} is not an allowed value", hint)
    if v == "const":
        return Finding("schema", "error", path, f"{_describe(inst)} is not allowed here",
                       f"use {err.validator_value!r}")
    if v == "type":
        want = err.validator_value
        wants = [want] if isinstance(want, str) else list(want)
        names = " or ".join(_TYPE_NAMES.get(w, w) for w in wants)
        hint = f"write {names}"
        if "string" in wants and isinstance(inst, (int, float, bool)):
            written = (raw or {}).get(path, str(inst).lower() if isinstance(inst, bool) else str(inst))
            hint = f"quote the value: '{written}'"
        elif inst is None:
            hint = f"give a value ({names}) or remove the key"
        return Finding("schema", "error", path, f"expected {names}, got {_describe(inst)}", hint)
    if v == "pattern":
        desc = err.schema.get("description", "")
        return Finding("schema", "error", path, f"{_describe(inst)} is not in the expected form",
                       desc or f"it must match {err.validator_value}")
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = err.validator_value
        word = "at least" if "inimum" in v else "at most"
        return Finding("schema", "error", path, f"{_describe(inst)} is out of range", f"use a value {word} {bound}")
    if v in ("minItems", "maxItems", "minLength", "maxLength"):
        return Finding("schema", "error", path, err.message, f"{v} is {err.validator_value}")
    if v == "uniqueItems":
        return Finding("schema", "error", path, "the list has duplicate entries", "remove the repeated entries")
    if v == "propertyNames":
        return Finding("schema", "error", path, err.message, "keys here are lower-case names")
    if v in ("oneOf", "anyOf"):
        return Finding("schema", "error", path, f"{_describe(inst)} does not match any allowed form",
                       err.schema.get("description", "see the schema"))
    hint = err.schema.get("description", "see the schema") if isinstance(err.schema, dict) else "see the schema"
    return Finding("schema", "error", path, err.message, hint)


def validate(data: Any, raw: Mapping[tuple, str] | None = None) -> list[Finding]:
    """Schema findings for loaded data; ``raw`` (path -> source text of non-string scalars) makes hints exact."""
    errors = _leaf_errors(_validator().iter_errors(data))
    findings: dict[tuple, Finding] = {}
    for err in errors:
        f = _finding(err, raw)
        if f.check == "schema" and err.validator == "additionalProperties" and isinstance(err.instance, dict):
            # One finding per unknown key, each pointing at its own line.
            allowed = _property_names(err.schema)
            for key in sorted(set(err.instance) - set(allowed)):
                g = Finding("schema", "error", (*tuple(err.absolute_path), key), f"unknown key {key!r}",
                            choices_hint(key, allowed, "keys here"))
                findings.setdefault((g.path, g.message), g)
            continue
        findings.setdefault((f.path, f.message), f)
    return list(findings.values())


__all__ = ["validate", "schema", "schema_text", "did_you_mean"]
