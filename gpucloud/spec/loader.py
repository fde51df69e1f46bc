"""Load a spec file into plain data, remembering the line and column of every key and item.

Everything that can go wrong with the file itself (encoding, tabs, YAML syntax, duplicate keys, aliases that expand
without bound, several documents, a top level that is not a mapping, a file too large) becomes a Finding. Nothing
here raises for a user mistake.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any, Callable

import yaml

from gpucloud.findings import Finding, Path

_Loader: type[yaml.CSafeLoader] | type[yaml.SafeLoader]
try:  # libyaml is 10x faster; fall back to pure Python where it is missing
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

MAX_BYTES = 8 * 1024 * 1024
# Values constructed from one file, counting every alias expansion: a spec is a few thousand nodes; a billion-laughs
# document is millions.
MAX_NODES = 200_000
# Mappings and lists nested deeper than this are refused before composing: libyaml's composer recurses in C and
# crashes the interpreter on a document nested 100,000 levels deep. A spec is about 6 levels deep.
MAX_DEPTH = 64

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


# (path, value) -> whether the scalar may be a secret that reports must not show.
Hide = Callable[[Path, Any], bool]
# path -> whether the last key of the path may itself be a secret ('password: {S3cret}' is a mapping).
HideKey = Callable[[Path], bool]


@dataclass
class LoadedYaml:
    """A file read as plain YAML data, with where each node sits; no schema yet (``spec.load`` gives a LoadedSpec)."""

    file: str
    data: Any = None
    locations: dict[Path, tuple[int, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    # The source as reports show it: the characters of every value that ``hide`` marks are replaced by '*' (same
    # length, so columns still point at the right place).
    text: str = ""
    # The source text of every scalar YAML did not read as a string (12.10 is read as 12.1): hints quote it as written.
    scalars: dict[Path, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)


class _TooLarge(Exception):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class _Builder:
    """Turns a composed YAML node graph into dicts/lists/scalars with a location map."""

    def __init__(self, file: str, hide: Hide | None = None, hide_key: HideKey | None = None) -> None:
        self.file = file
        self.hide = hide
        self.hide_key = hide_key
        self.hidden: list[tuple[yaml.Mark, yaml.Mark]] = []  # spans of the values to mask in the shown text
        self.locations: dict[Path, tuple[int, int]] = {}
        self.findings: list[Finding] = []
        self.scalars: dict[Path, str] = {}
        self.count = 0
        self._scalar = yaml.constructor.SafeConstructor()
        self._open: set[int] = set()  # ids of the collections being built, to spot an alias that contains itself

    def _mark(self, node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def _error(self, check: str, node: yaml.Node, path: Path, message: str, hint: str) -> None:
        line, col = self._mark(node)
        self.findings.append(Finding(check, "error", path, message, hint, self.file, line, col))

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge(path)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar_value(node, path)
        if id(node) in self._open:
            # The node is the anchored one; point at where the alias is used (its key or list item) instead.
            line, col = self.locations.get(path) or self._mark(node)
            self.findings.append(Finding("yaml-recursive-alias", "error", path,
                                         "an alias refers to a value that contains it",
                                         "remove the alias; a spec cannot contain itself", self.file, line, col))
            return None
        if node.tag not in (_MAP, _SEQ):
            self._error("yaml-tag", node, path, f"unsupported YAML tag {node.tag}",
                        "remove the explicit !tag; specs use plain YAML mappings and lists")
            self._hide_unbuilt(node, path)
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            out = []
            for i, item in enumerate(node.value):
                self.locations.setdefault((*path, i), self._mark(item))
                out.append(self.build(item, (*path, i)))
            return out
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self._error("yaml-merge-key", key_node, path, "merge keys (<<) are not supported",
                            "write the keys out, or use an anchor for a whole value")
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in (_STR, _INT, _BOOL, _NULL, _FLOAT):
                self._error("yaml-key-type", key_node, path, "a mapping key must be a plain word",
                            "use a plain string as the key")
                continue
            key = key_node.value if key_node.tag == _STR else str(key_node.value)
            if self.hide_key is not None and self.hide_key((*path, key)):
                self.hidden.append((key_node.start_mark, key_node.end_mark))
            if key_node.tag in (_BOOL, _NULL):
                self._error("yaml-key-type", key_node, (*path, key),
                            f"key {key!r} is read by YAML as {'a boolean' if key_node.tag == _BOOL else 'null'}",
                            f"quote it: '{key}':")
                continue
            if key in seen:
                self._error("yaml-duplicate-key", key_node, (*path, key),
                            f"duplicate key {key!r} (first defined on line {seen[key]})",
                            "remove one of the two; YAML would silently keep only the last")
                self._hide_unbuilt(value_node, (*path, key))
                continue
            seen[key] = key_node.start_mark.line + 1
            self.locations[(*path, key)] = self._mark(key_node)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _hide_unbuilt(self, node: yaml.Node, path: Path) -> None:
        """Mask the values under a node that is reported but not built (a duplicate key's value, a tagged
        collection): the source line is still shown, and a password written there must not be."""
        if self.hide is None:
            return
        stack, seen = [(node, path)], 0
        while stack and seen < MAX_NODES:
            node, path = stack.pop()
            seen += 1
            if isinstance(node, yaml.ScalarNode):
                if self.hide(path, node.value):
                    self.hidden.append((node.start_mark, node.end_mark))
            elif isinstance(node, yaml.SequenceNode):
                stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
            elif isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode):
                        if self.hide_key is not None and self.hide_key((*path, str(k.value))):
                            self.hidden.append((k.start_mark, k.end_mark))
                        stack.append((v, (*path, str(k.value))))

    def _scalar_value(self, node: yaml.Node, path: Path) -> Any:
        value = self._scalar_of(node, path)
        if self.hide is not None and self.hide(path, value):
            self.hidden.append((node.start_mark, node.end_mark))
        return value

    def _scalar_of(self, node: yaml.Node, path: Path) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag == _TIMESTAMP:  # dates are not a spec type; keep the text so the schema reports it as a string
            return node.value
        if tag in (_INT, _FLOAT, _BOOL, _NULL):
            self.scalars[path] = node.value
            try:
                value = self._scalar.construct_object(node, deep=True)
            except (yaml.YAMLError, ValueError, OverflowError):
                return node.value
            if isinstance(value, (datetime.date, datetime.datetime)):
                return node.value
            return value
        self._error("yaml-tag", node, path, f"unsupported YAML tag {tag}",
                    "remove the explicit !tag; specs use plain YAML values")
        return None


def _decode(raw: bytes, file: str) -> tuple[str | None, Finding | None]:
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        return None, Finding("yaml-encoding", "error", (), f"the file is not UTF-8 (byte 0x{raw[exc.start]:02x})",
                             "save the file as UTF-8", file, line, col)


def _tabs(text: str, file: str) -> list[Finding]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip(" ")
        if stripped.startswith("\t"):
            col = len(line) - len(stripped) + 1
            out.append(Finding("yaml-tab", "error", (), "a tab is used for indentation",
                               "indent with spaces; YAML does not allow tabs there", file, n, col))
    return out


def _position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _too_deep(text: str, file: str) -> Finding | None:
    """Scan the event stream (iterative, no recursion) for nesting beyond MAX_DEPTH."""
    depth = 0
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    return Finding("yaml-too-deep", "error", (), f"the document is nested more than {MAX_DEPTH} "
                                   "levels deep", "a spec is a handful of levels deep; flatten it", file,
                                   mark.line + 1 if mark else 0, mark.column + 1 if mark else 0)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as exc:
        # PyYAML 6.0.4's scanner has a nesting limit of its own and may hit it before we see the events.
        mark = getattr(exc, "problem_mark", None)
        if "nesting depth" in str(getattr(exc, "problem", "") or exc) and mark is not None:
            return Finding("yaml-too-deep", "error", (), f"the document is nested more than {MAX_DEPTH} levels deep",
                           "a spec is a handful of levels deep; flatten it", file, mark.line + 1, mark.column + 1)
        return None  # the composer below reports it with its position
    finally:
        loader.dispose()
    return None


def _masked(text: str, spans: list[tuple[yaml.Mark, yaml.Mark]]) -> str:
    """The text with every non-blank character inside the spans replaced by '*'."""
    if not spans:
        return text
    lines = text.splitlines(keepends=True)
    for start, end in spans:
        for n in range(start.line, min(end.line, len(lines) - 1) + 1):
            line = lines[n]
            body = line.rstrip("\r\n\x85\u2028\u2029")
            a = start.column if n == start.line else 0
            b = end.column if n == end.line else len(body)
            lines[n] = body[:a] + "".join(c if c.isspace() else "*" for c in body[a:b]) + body[b:] + line[len(body):]
    return "".join(lines)


def load_text(text: str, file: str, hide: Hide | None = None, hide_key: HideKey | None = None) -> LoadedYaml:
    result = LoadedYaml(file=file, text=text)
    tab_findings = _tabs(text, file)
    if tab_findings:
        result.findings.extend(tab_findings)
        return result
    deep = _too_deep(text, file)
    if deep:
        result.findings.append(deep)
        return result
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        if "expected a single document" in str(exc.context or ""):
            result.findings.append(Finding("yaml-multiple-documents", "error", (),
                                           "the file holds more than one YAML document",
                                           "keep one cluster per file and remove the '---' separator", file, line, col))
        else:
            result.findings.append(Finding("yaml-syntax", "error", (), f"YAML syntax error: {problem}",
                                           "fix the YAML at this position (indentation, a missing ':' or quote)",
                                           file, line, col))
        return result
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character or "\0")
        result.findings.append(Finding("yaml-character", "error", (), f"character U+{code:04X} is not allowed "
                                       "in YAML", "remove it (control characters cannot appear in a spec)",
                                       file, line, col))
        return result
    except yaml.YAMLError as exc:
        result.findings.append(Finding("yaml-syntax", "error", (), f"YAML error: {exc}", "fix the YAML", file, 1, 1))
        return result
    finally:
        loader.dispose()
    if node is None:
        result.findings.append(Finding("spec-empty", "error", (), "the spec is empty",
                                       "start from clusters/lab.yaml", file, 1, 1))
        return result
    if not isinstance(node, yaml.MappingNode):
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        result.findings.append(Finding("spec-not-mapping", "error", (), "the top level of a spec must be a mapping",
                                       "start the file with 'name: <cluster>' and the other top-level keys",
                                       file, line, col))
        return result
    builder = _Builder(file, hide, hide_key)
    builder.locations[()] = (1, 1)
    try:
        result.data = builder.build(node, ())
    except _TooLarge as exc:
        result.text = _masked(text, builder.hidden)
        # Point at the top-level key whose value blew up: that is where the multiplying aliases are used.
        where = exc.path[:1]
        line, col = builder.locations.get(where, (1, 1))
        result.findings.append(Finding("yaml-too-many-nodes", "error", where,
                                       f"the document expands to more than {MAX_NODES:,} values (aliases?)",
                                       "remove the aliases that multiply values; a spec needs a few thousand at most",
                                       file, line, col))
        result.data = None
        return result
    except RecursionError:
        result.text = _masked(text, builder.hidden)
        result.findings.append(Finding("yaml-too-deep", "error", (), "the document is nested too deeply",
                                       "a spec is a handful of levels deep; check for recursive aliases", file, 1, 1))
        result.data = None
        return result
    result.locations = builder.locations
    result.scalars = builder.scalars
    result.text = _masked(text, builder.hidden)
    result.findings.extend(builder.findings)
    return result


def load_file(path: str | FsPath, hide: Hide | None = None, hide_key: HideKey | None = None) -> LoadedYaml:
    file = str(path)
    try:
        # Read at most one byte past the limit: a size from stat() means nothing for /dev/zero or a pipe.
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        return LoadedYaml(file=file, findings=[Finding("spec-unreadable", "error", (), f"cannot read the spec: "
                                                       f"{exc.strerror or exc}", "check the path and permissions",
                                                       file, 0, 0)])
    if len(raw) > MAX_BYTES:
        return LoadedYaml(file=file, findings=[Finding(
            "spec-too-large", "error", (), f"the file is larger than {MAX_BYTES:,} bytes",
            "a spec describes pools by count and pattern; it should be a few KB", file, 1, 1)])
    text, bad = _decode(raw, file)
    if bad:
        return LoadedYaml(file=file, findings=[bad])
    assert text is not None  # _decode returns the text or a finding
    return load_text(text, file, hide, hide_key)
