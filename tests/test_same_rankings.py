"""The restructuring of the package changed no result: the rankings of three small collections
(every stage's score of every hit, tiny random models) equal those commit 5a69ccf gave, before
the collection layer, the grouped CLI, the public API and the package layout were built.

tests/data/rankings-5a69ccf.json was written by tests/rankings_probe.py run against that
commit's source (``PYTHONPATH=<checkout of 5a69ccf>/src:tests python tests/rankings_probe.py
tests/data/rankings-5a69ccf.json``), with the same tiny models (their tokenizer is kept in
tests/data so that they are the same on every run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankings_probe import rankings

pytestmark = pytest.mark.slow  # builds three collections

GOLDEN = Path(__file__).resolve().parent / "data" / "rankings-5a69ccf.json"


def test_rankings_equal_those_before_the_restructuring(tmp_path: Path) -> None:
    before = json.loads(GOLDEN.read_text())
    now = rankings(tmp_path)
    assert now.keys() == before.keys()
    for setup, queries in before.items():
        for query, hits in queries.items():
            got = now[setup][query]
            assert [h["doc_id"] for h in got] == [h["doc_id"] for h in hits], (setup, query)
            for new, old in zip(got, hits):
                for stage, value in old.items():
                    if stage != "doc_id":
                        assert new[stage] == (None if value is None else pytest.approx(value, abs=2e-5)), (
                            setup, query, new["doc_id"], stage,
                        )
