"""`edgeship report`: per-device reports of profiles — one HTML file, Markdown for CI, JSON for scripts.

``make_report(inputs, builds)`` loads the profiles (RUNS_DIRs or profile.json files) and computes every
figure once (model.py); ``report_html``, ``report_markdown`` and ``report_json`` lay the same figures out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from edgeship.profiles.collect import load_profiles
from edgeship.profiles.report.html import report_html
from edgeship.profiles.report.markdown import report_markdown
from edgeship.profiles.report.model import Entry, Report, build_report
from edgeship.profiles.report.summary_json import JSON_SCHEMA_FILE, REPORT_SCHEMA, report_json


def make_report(inputs: Iterable[str | Path], builds: Sequence[Path] = ()) -> Report:
    return build_report(load_profiles(inputs), builds)


__all__ = [
    "JSON_SCHEMA_FILE",
    "REPORT_SCHEMA",
    "Entry",
    "Report",
    "make_report",
    "report_html",
    "report_json",
    "report_markdown",
]
