"""The text reporter: findings capped per check with a count of the rest, and every source split once."""

from __future__ import annotations

import io

from gpucloud import report
from gpucloud.findings import Finding


class CountingText(str):
    """A source text that counts how often it is split into lines."""

    splits = 0

    def splitlines(self, *args, **kwargs):
        type(self).splits += 1
        return super().splitlines(*args, **kwargs)


def _findings(check: str, n: int, file: str = "spec.yaml") -> list[Finding]:
    return [Finding(check, "error", ("tenants", 0, "users", i), f"bad user {i}", "lower-case it", file, i + 1, 7)
            for i in range(n)]


def test_findings_beyond_the_cap_are_counted_per_check():
    out = io.StringIO()
    findings = sorted(_findings("schema", 50) + _findings("reference-pool", 3), key=Finding.sort_key)
    report.text(findings, {}, out, per_check=20)
    lines = out.getvalue().splitlines()
    assert sum("[schema]" in line for line in lines) == 20
    assert sum("[reference-pool]" in line for line in lines) == 3
    assert "bad user 19" in out.getvalue() and "bad user 20" not in out.getvalue()  # the first ones in file order
    assert lines[-1] == "spec.yaml: ... and 30 more finding(s) of check schema (--output json lists them all)"
    assert not any("more finding(s) of check reference-pool" in line for line in lines)


def test_the_cap_counts_each_file_on_its_own():
    out = io.StringIO()
    report.text(_findings("schema", 25, "a.yaml") + _findings("schema", 5, "b.yaml"), {}, out, per_check=20)
    text = out.getvalue()
    assert "a.yaml: ... and 5 more finding(s) of check schema" in text
    assert "b.yaml: ... and" not in text and text.count("b.yaml:") == 5


def test_no_cap_shows_every_finding():
    out = io.StringIO()
    report.text(_findings("schema", 50), {}, out, per_check=0)
    assert out.getvalue().count("[schema]") == 50 and "more finding(s)" not in out.getvalue()


def test_default_cap_is_the_module_constant():
    out = io.StringIO()
    report.text(_findings("schema", report.PER_CHECK + 1), {}, out)
    assert f"... and 1 more finding(s) of check schema" in out.getvalue()


def test_each_source_is_split_once_however_many_findings():
    """Locating the offending line used to split the whole source again for every finding (quadratic)."""
    CountingText.splits = 0
    source = CountingText("".join(f"  - U{i}\n" for i in range(500)))
    out = io.StringIO()
    report.text(_findings("schema", 500), {"spec.yaml": source}, out, per_check=0)
    assert CountingText.splits == 1
    assert "  500 |   - U499\n" in out.getvalue()


def test_a_very_long_path_is_shortened_in_text():
    out = io.StringIO()
    key = "k" * 5000
    report.text([Finding("schema", "error", ("metadata", key), "unknown key", "remove it", "spec.yaml", 3, 1)], {},
                out)
    first = out.getvalue().splitlines()[0]
    assert len(first) < 200 and first.startswith("spec.yaml:3:1: error[schema] $.metadata.kkk")
