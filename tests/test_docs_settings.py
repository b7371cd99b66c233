"""Every setting is documented: each field of Config and SearchConfig has a row in the tables
of docs/configuration.md, and each row names a real field."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from m3retriever import Config, SearchConfig

DOCS = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def _table_names(heading: str) -> list[str]:
    """Backticked names in the first column of the table under ``heading``."""
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(heading + "\n")
    names: list[str] = []
    in_table = False
    for line in text[start + len(heading) :].splitlines()[1:]:
        if line.startswith("|"):
            in_table = True
            first = line.split("|")[1]
            names += re.findall(r"`([a-z_0-9]+)`", first)
        elif in_table or line.startswith("#"):
            break
    return names


@pytest.mark.parametrize(
    ("cls", "heading"),
    [(Config, "## Settings"), (SearchConfig, "### `[search]`")],
    ids=["Config", "SearchConfig"],
)
def test_every_setting_is_documented(cls: type, heading: str) -> None:
    documented = _table_names(heading)
    assert documented, f"no settings table under {heading!r}"
    expected = {f.name for f in fields(cls)} - {"search"}  # the [search] table documents that one
    missing = sorted(expected - set(documented))
    assert not missing, f"{cls.__name__} fields without a row under {heading!r} in {DOCS.name}: {missing}"
    unknown = sorted(set(documented) - expected)
    assert not unknown, f"rows under {heading!r} in {DOCS.name} that are not {cls.__name__} fields: {unknown}"
