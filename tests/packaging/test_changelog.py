"""Every released version has its CHANGELOG entry (Keep a Changelog): the one pyproject names is the newest."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_version_is_the_newest_release_in_the_changelog() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases, "CHANGELOG.md has no release heading like '## [0.1.0] - 2026-11-24'"
    assert releases[0] == version, f"pyproject says {version}, the newest CHANGELOG release is {releases[0]}"
