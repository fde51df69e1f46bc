"""JSON Schema validation of loaded spec data, turning every schema error into a located, hinted Finding."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Iterator, Mapping, Sequence

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


SECRET_REF = "#/$defs/secret_ref"
MAX_VALUE = 60  # characters of a value quoted in a message


def _resolve(ref: str) -> Any:
    node: Any = schema()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@lru_cache(maxsize=1)
def secret_positions() -> tuple[tuple[str, ...], ...]:
    """Where the schema puts a secret reference ({secret: name}), read from its $refs to secret_ref; '*' stands
    for any list index or mapping key. A value written there (a literal password) is never echoed."""
    found: set[tuple[str, ...]] = set()

    def walk(node: Any, path: tuple[str, ...], refs: frozenset) -> None:
        if isinstance(node, list):
            for sub in node:
                walk(sub, path, refs)
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if ref == SECRET_REF:
            found.add(path)
        elif isinstance(ref, str) and ref.startswith("#/") and ref not in refs:
            walk(_resolve(ref), path, refs | {ref})
        for key in ("allOf", "anyOf", "oneOf", "then", "else"):
            walk(node.get(key), path, refs)
        for name, sub in (node.get("properties") or {}).items():
            walk(sub, (*path, name), refs)
        for sub in (node.get("patternProperties") or {}).values():
            walk(sub, (*path, "*"), refs)
        for key in ("items", "additionalProperties"):
            walk(node.get(key), (*path, "*"), refs)

    walk(schema(), (), frozenset())
    return tuple(sorted(found))


@lru_cache(maxsize=1)
def _secret_heads() -> frozenset:
    return frozenset(pos[0] for pos in secret_positions() if pos)


def secret_position(path: Sequence[str | int]) -> tuple | None:
    """The secret reference position at or above ``path``, or None when the path is not inside one."""
    if not path or (path[0] not in _secret_heads() and "*" not in _secret_heads()):
        return None
    for pos in secret_positions():
        if len(path) >= len(pos) and all(p == "*" or p == q for p, q in zip(pos, path)):
            return pos
    return None


@lru_cache(maxsize=1)
def _secret_name() -> re.Pattern:
    return re.compile(_resolve(SECRET_REF)["properties"]["secret"]["pattern"])


def hides(path: Sequence[str | int], value: Any) -> bool:
    """Whether a scalar at ``path`` may be a secret value and must not be shown: anything inside a secret reference
    except a well-formed secret name under its ``secret`` key."""
    pos = secret_position(path)
    if pos is None:
        return False
    rest = tuple(path[len(pos):])
    return not (rest == ("secret",) and isinstance(value, str) and _secret_name().fullmatch(value) is not None)


def hides_key(path: Sequence[str | int]) -> bool:
    """Whether the last key of ``path`` lies inside a secret reference and is not its ``secret`` key."""
    pos = secret_position(path)
    return pos is not None and len(path) > len(pos) and tuple(path[len(pos):]) != ("secret",)


def shorten(text: str, limit: int = MAX_VALUE) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _describe(value: Any, path: Sequence[str | int] = ()) -> str:
    if secret_position(path) is not None and not isinstance(value, (dict, list)):
        return "a literal value (not shown: this is a secret's place)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return shorten(repr(value))


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


def _size_message(v: str, inst: Any, bound: int) -> str:
    if v in ("minItems", "maxItems"):
        n = len(inst) if isinstance(inst, list) else 0
        return f"the list has {n:,} entr{'y' if n == 1 else 'ies'}; {'at least' if v == 'minItems' else 'at most'} " \
               f"{bound:,} {'is' if bound == 1 else 'are'} allowed"
    n = len(inst) if isinstance(inst, str) else 0
    return f"the text is {n:,} character{'' if n == 1 else 's'} long; {'at least' if v == 'minLength' else 'at most'}" \
           f" {bound:,} {'is' if bound == 1 else 'are'} allowed"


def _unknown_key(path: tuple, key: str, allowed: list[str]) -> Finding:
    if hides_key((*path, key)):
        # '{S3cret}' is a mapping whose key is the password: neither the message nor the path may name it.
        return Finding("schema", "error", path, "a key other than 'secret' (not shown: this is a secret's place)",
                       "write a reference, {secret: <name>}, and keep the value itself in the secret store")
    return Finding("schema", "error", (*path, key), f"unknown key {shorten(repr(key))}",
                   choices_hint(key, allowed, "keys here"))


def _finding(err, raw: Mapping[tuple, str] | None = None) -> Finding:
    """A finding for one schema error. Messages are built here, never taken from jsonschema: its messages quote the
    whole instance (a 50 KB list of pools, or a mapping holding a password)."""
    path = tuple(err.absolute_path)
    v = err.validator
    inst = err.instance
    secret = secret_position(path) is not None
    if v == "additionalProperties":
        allowed = _property_names(err.schema)
        extras = sorted(set(inst) - set(allowed)) if isinstance(inst, dict) else []
        return _unknown_key(path, extras[0] if extras else "?", allowed)
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else "?"
        desc = err.schema.get("properties", {}).get(missing, {}).get("description", "")
        return Finding("schema", "error", path, f"missing required key {missing!r}",
                       f"add '{missing}:'" + (f" ({desc})" if desc else ""))
    if v == "enum":
        choices = [str(c) for c in err.validator_value]
        hint = "" if secret else choices_hint(str(inst), choices, "values")
        if not hint.startswith("did you mean"):
            hint = "one of: " + ", ".join(choices)
        return Finding("schema", "error", path, f"{_describe(inst, path)} is not an allowed value", hint)
    if v == "const":
        return Finding("schema", "error", path, f"{_describe(inst, path)} is not allowed here",
                       f"use {err.validator_value!r}")
    if v == "type":
        want = err.validator_value
        wants = [want] if isinstance(want, str) else list(want)
        names = " or ".join(_TYPE_NAMES.get(w, w) for w in wants)
        hint = f"write {names}"
        if secret and path == secret_position(path) and not isinstance(inst, (dict, list)):
            hint = "write a reference, {secret: <name>}, and keep the value itself in the secret store"
        elif secret:
            pass
        elif "string" in wants and isinstance(inst, (int, float, bool)):
            written = (raw or {}).get(path, str(inst).lower() if isinstance(inst, bool) else str(inst))
            hint = f"quote the value: '{shorten(written)}'"
        elif inst is None:
            hint = f"give a value ({names}) or remove the key"
        return Finding("schema", "error", path, f"expected {names}, got {_describe(inst, path)}", hint)
    if v == "pattern":
        desc = err.schema.get("description", "")
        return Finding("schema", "error", path, f"{_describe(inst, path)} is not in the expected form",
                       desc or f"it must match {err.validator_value}")
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = err.validator_value
        word = "at least" if "inimum" in v else "at most"
        return Finding("schema", "error", path, f"{_describe(inst, path)} is out of range",
                       f"use a value {word} {bound}")
    if v in ("minItems", "maxItems", "minLength", "maxLength"):
        return Finding("schema", "error", path, _size_message(v, inst, err.validator_value),
                       f"{v} is {err.validator_value}")
    if v == "uniqueItems":
        return Finding("schema", "error", path, "the list has duplicate entries", "remove the repeated entries")
    if v == "propertyNames":
        return Finding("schema", "error", path, f"key {_describe(inst, path)} is not allowed here",
                       "keys here are lower-case names")
    if v in ("oneOf", "anyOf"):
        return Finding("schema", "error", path, f"{_describe(inst, path)} does not match any allowed form",
                       err.schema.get("description", "see the schema"))
    hint = err.schema.get("description", "see the schema") if isinstance(err.schema, dict) else "see the schema"
    return Finding("schema", "error", path, f"{_describe(inst, path)} is not valid here ({v})", hint)


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
                g = _unknown_key(tuple(err.absolute_path), key, allowed)
                findings.setdefault((g.path, g.message), g)
            continue
        findings.setdefault((f.path, f.message), f)
    return list(findings.values())


def broken_sections(data: Mapping, findings: Iterable[Finding]) -> frozenset[str]:
    """The top-level keys of the spec that an error falls in, or that are required and missing; '*' when an error
    concerns the whole document. Everything else is schema-valid and can be checked."""
    required = schema().get("required", [])
    out = {key for key in required if key not in data}
    for f in findings:
        if f.level != "error":
            continue
        if f.path:
            out.add(str(f.path[0]))
        elif not f.message.startswith("missing required key"):
            out.add("*")
    return frozenset(out)


__all__ = ["validate", "broken_sections", "schema", "schema_text", "did_you_mean", "secret_positions", "secret_position",
           "hides", "hides_key", "shorten"]
