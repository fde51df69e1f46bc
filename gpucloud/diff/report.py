"""Reporters for a Diff: Markdown for people (pull requests, terminals) and JSON for tools. Both read the same
Diff; neither decides anything."""

from __future__ import annotations

from gpucloud import jsonout
from gpucloud import markdown as md
from gpucloud.impact import Impact
from gpucloud.diff.model import Change, Diff

HOSTS_WIDTH = 100


def cell(value) -> str:
    """A value as a Markdown table cell: pipes and newlines cannot break the table."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value) or "(empty)"
    elif isinstance(value, int) and abs(value) >= 10000:
        text = f"{value:,}"
    else:
        text = str(value)
    return md.text(text) or "(empty)"


def _hosts(c: Change) -> str:
    if not c.hosts:
        return "-"
    text = c.hosts if len(c.hosts) <= HOSTS_WIDTH else c.hosts[:HOSTS_WIDTH].rsplit(",", 1)[0] + ",..."
    return f"{md.cell_code(text)} ({c.host_count:,})"


def _what(c: Change) -> str:
    subject = c.subject + (f" {c.field}" if c.field else "")
    if c.action == "add" and not c.field:
        return f"add {subject}"
    if c.action == "remove" and not c.field:
        return f"remove {subject}"
    return subject


def _size(value):
    from gpucloud.markdown import size_text

    return size_text(value) if isinstance(value, int) else value


def _old_new(c: Change) -> str:
    if c.old is None and c.new is None:
        return "-"
    if c.field == "capacity" or c.field.startswith(("storage_quota.", "capacity")):
        return f"{cell(_size(c.old))} -> {cell(_size(c.new))}"  # bytes in JSON, readable here
    if c.field.endswith(("_asn", "_asn_base")):  # an AS number names a switch: no thousands separators
        return " -> ".join(cell(None if v is None else str(v)) for v in (c.old, c.new))
    return f"{cell(c.old)} -> {cell(c.new)}"


def summary_line(diff: Diff) -> str:
    if not diff.changed:
        return "No changes."
    if not diff.changes:
        return f"**{len(diff.derived)} derived change(s)** in the rendered plan, no change of the spec's settings."
    counts = diff.counts()
    parts = [f"{counts[i.value]} {i.label}" for i in reversed(Impact) if counts[i.value]]
    head = f"**{len(diff.changes)} change(s)**, worst impact: **{diff.worst.label}**"
    if diff.destroys_data:
        head = "**Destroys data.** " + head
    return head + " (" + ", ".join(parts) + ")."


def markdown(diff: Diff, heading: str = "##", max_rows: int = 200, fold_derived: bool = False) -> str:
    """The diff for people. ``fold_derived`` puts the derived records in a <details> block (pull-request comments)."""
    out = [f"{heading} Changes: {md.text(diff.old_name)} -> {md.text(diff.new_name)}", "", summary_line(diff), ""]
    for note in diff.notes:
        out += [f"> {md.text(note)}", ""]
    if diff.changes:
        out += [f"{heading}# Order of work", ""]
    shown = 0
    for step in diff.steps():
        out += [f"**{step['step']}. {step['title'].capitalize()}**: {step['what']}.", ""]
        if step["step"] == 1:
            out += [f"- {md.text(_what(c))}" + (f" on {md.code(c.hosts)}" if c.hosts and len(c.hosts) <= HOSTS_WIDTH
                                                 else "")
                    for c in diff.sorted() if c.impact is Impact.DESTROYS_DATA] + [""]
            continue
        out += ["| impact | change | old -> new | hosts | why |", "|---|---|---|---|---|"]
        for c in step["changes"]:
            if shown >= max_rows:
                break
            out.append(f"| {c.impact.label} | {cell(_what(c))} | {_old_new(c)} | {_hosts(c)} | {cell(c.note)} |")
            shown += 1
        out.append("")
    if shown < len(diff.changes):
        out += [f"... and {len(diff.changes) - shown} more change(s); `gpucloud diff --output json` lists all.", ""]
    if diff.derived:
        title = "Derived in the rendered plan"
        out += ([f"<details><summary>{title} ({len(diff.derived)})</summary>", ""] if fold_derived else
                [f"{heading}# {title}", ""])
        out += ["| impact | part of plan.json | what |", "|---|---|---|"]
        out += [f"| {c.impact.label} | {cell(c.subject)} | {cell(c.note)} |"
                for c in sorted(diff.derived, key=Change.sort_key)[:max_rows]]
        out += ["", "</details>", ""] if fold_derived else [""]
    return "\n".join(out)


def as_json(diff: Diff) -> str:
    return jsonout.dumps(diff.as_dict())
