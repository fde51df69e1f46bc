"""Spec text in Markdown (plan.md, the diff, the pull-request comment) is escaped by one helper, gpucloud.markdown:
an HTML comment opener cannot hide the rest of the document, a pipe cannot split a table row, a backtick cannot end
a code span and a newline cannot end a table row or a paragraph."""

from __future__ import annotations

import re

import yaml

from conftest import CLUSTERS
from gpucloud import markdown as md
from gpucloud.diff import compare, report
from gpucloud.diff.inputs import document_of
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import plan_md

NASTY = "Lab <!-- the rest is hidden | col `tick` *bold* _em_ [link](http://x)\n# heading\n> quote &amp;"


def _unescaped(text: str, char: str) -> int:
    """Occurrences of ``char`` not preceded by a backslash."""
    return len(re.findall(r"(?<!\\)" + re.escape(char), text))


def test_text_escapes_markup_and_keeps_one_line():
    out = md.text(NASTY)
    assert "\n" not in out
    assert _unescaped(out, "<!--") == 0 and "\\<!--" in out
    for char in "|`*[]&<":
        assert _unescaped(out, char) == 0, char
    assert "\\_em\\_" in out
    assert md.text("slurm_conf nvidia_driver 10.0.0.1 2-00:00:00") == "slurm_conf nvidia_driver 10.0.0.1 2-00:00:00"


def test_paragraph_escapes_block_starts():
    assert md.paragraph("# not a heading") == "\\# not a heading"
    assert md.paragraph("> not a quote") == "\\> not a quote"
    assert md.paragraph("- not a list") == "\\- not a list"
    assert md.paragraph("1. not a list") == "1\\. not a list"


def test_code_span_fence_outgrows_backticks_inside():
    assert md.code("a`b") == "``a`b``"
    assert md.code("``x") == "``` ``x ```"
    assert md.cell_code("a|b") == "`a\\|b`"
    assert md.fence("x\n```\ny", "text") == ["````text", "x\n```\ny", "````"]


def _spec(tmp_path, edit) -> object:
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    edit(data)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    assert not checked.fails("error"), [f.message for f in checked.findings]
    return checked


def test_plan_md_escapes_the_description(tmp_path):
    def edit(d):
        d["metadata"]["description"] = NASTY
    checked = _spec(tmp_path, edit)
    text = plan_md.render_text(build_plan(checked.spec, tuple(checked.findings)))
    assert _unescaped(text, "<!--") == 0
    lines = text.splitlines()
    desc = lines[2]
    assert desc.startswith("Lab \\<!--") and "\\`tick\\`" in desc and desc.endswith("> quote \\&amp;")
    assert not any(line.startswith(("# heading", "> quote")) for line in lines)
    # The sections after the description are still there (nothing was swallowed into a comment or a heading).
    assert "## At a glance" in lines and "## Files" in lines


def test_diff_markdown_escapes_tenant_description_in_its_table_row(tmp_path):
    old = document_of(check_spec(CLUSTERS / "lab.yaml"))

    def edit(d):
        d["tenants"][0]["description"] = NASTY
    new = document_of(_spec(tmp_path, edit))
    text = report.markdown(compare(old, new, "old", "new"))
    assert _unescaped(text, "<!--") == 0
    rows = [line for line in text.splitlines() if "tenant research" in line and "description" in line]
    assert len(rows) == 1, text
    # One row of five cells: six unescaped pipes, whatever the description holds.
    assert _unescaped(rows[0], "|") == 6, rows[0]
    assert "\\`tick\\`" in rows[0]
