"""Each stage of an evaluation ranks by its own settings alone.

A single-branch stage (dense, sparse, BM25) searches with that branch only, so its run must not
move with the other branches' weights, RRF's k, the fusion, the prefetch limit or the rerank
settings; the fused stage (no rerank) must not move with the rerank settings. Wherever those
settings come from: the call, ``M3R_SEARCH_*`` variables, the collection's saved defaults, and
whether the retriever is the one that built the collection or one that opened it later (the
collection's kept settings). A profile that names its own query instruction (as ``small``
does) is the case where an evaluation that built the collection and a later one ranked the
dense stage differently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import QUERIES
from m3retriever import Retriever, load_config
from m3retriever.config.profiles import PROFILES, Profile, get_profile
from m3retriever.evaluation.runner import stage_runs

PROFILE = "tiny-instructed"
BRANCHES = ("dense", "sparse", "bm25")
DEPTH = 20
QUERY_MAP = {f"q{i}": q for i, q in enumerate(QUERIES)}
# What the tests pass besides the profile, as the tiny_settings fixture does (the models are
# the profile's).
OTHERS = {"device": "cpu", "batch_size": 8, "max_length": 128, "chunk_tokens": 48, "chunk_overlap": 8}

_weight = st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0])
_rerank = {
    "rerank_depth": st.integers(1, 12),
    "rerank_weight": st.sampled_from([0.0, 0.3, 0.7, 1.0]),
}
_fusion = {
    "dense_weight": _weight,
    "sparse_weight": _weight,
    "bm25_weight": _weight,
    "rrf_k": st.integers(1, 100),
    "fusion": st.sampled_from(["rrf", "dbsf"]),
    "prefetch_limit": st.integers(1, 40),
}
_env_only = {"rerank": st.booleans()}  # not a setting a collection keeps


@pytest.fixture(scope="module")
def instructed_profile(tiny_bge_m3_path: Path, tiny_reranker_path: Path) -> Any:
    """A profile like ``small`` on the tiny models: its own query instruction, a BM25 branch
    and tuned search defaults."""
    base = get_profile("bge-m3").settings
    profile = Profile(
        PROFILE,
        "tiny models with the profile's own query instruction",
        {
            **base,
            "dense_model": str(tiny_bge_m3_path),
            "reranker_model": str(tiny_reranker_path),
            "bm25": True,
            "lexical_encoder": "bm25",
            "query_instruction": "Represent this query: ",
            "rerank_max_length": 128,
            "search": {"rrf_k": 10, "sparse_weight": 0.5, "bm25_weight": 0.5, "rerank_weight": 0.3, "rerank_depth": 5},
        },
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(PROFILES, PROFILE, profile)
        yield PROFILE


def _open(location: str, profile: str | None, env: Mapping[str, str]) -> Retriever:
    return Retriever(load_config(env=dict(env), location=location, collection="stages", profile=profile, **OTHERS))


@pytest.fixture(scope="module")
def built(instructed_profile: str, tmp_path_factory: pytest.TempPathFactory, corpus_docs: list[dict]) -> dict:
    """The collection, and each stage's run from the retriever that built it (default settings)."""
    location = str(tmp_path_factory.mktemp("stages") / "store")
    with _open(location, instructed_profile, {}) as r:
        r.ingest(corpus_docs)
        r.optimize()
        runs, _ = stage_runs(r, QUERY_MAP, depth=DEPTH)
    assert set(BRANCHES) | {"fused", "rerank"} <= set(runs)
    return {"location": location, "runs": runs}


def _env(values: Mapping[str, Any]) -> dict[str, str]:
    return {f"M3R_SEARCH_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def _runs_with(
    built: dict, profile: str | None, env: Mapping[str, Any], saved: Mapping[str, Any], stages: list[str]
) -> dict:
    """The stages' runs of a later retriever: ``saved`` kept with the collection, ``env`` as
    ``M3R_SEARCH_*`` variables."""
    with _open(built["location"], PROFILE, {}) as r:
        r.clear_search_defaults()
        if saved:
            r.save_search_defaults(dict(saved))
    try:
        with _open(built["location"], profile, _env(env)) as r:
            runs, _ = stage_runs(r, QUERY_MAP, stages, depth=DEPTH)
    finally:
        with _open(built["location"], PROFILE, {}) as r:
            r.clear_search_defaults()
    return runs


def test_the_retriever_that_built_the_collection_and_a_later_one_rank_alike(built: dict) -> None:
    # the case: the evaluation that ingested the collection, then one with the sparse
    # branch's weight at 0 on the same store
    runs = _runs_with(built, PROFILE, {"sparse_weight": 0}, {}, list(BRANCHES))
    for stage in BRANCHES:
        assert runs[stage] == built["runs"][stage], stage
    later = _runs_with(built, PROFILE, {}, {}, ["fused", "rerank"])
    assert later == {s: built["runs"][s] for s in ("fused", "rerank")}


@settings(max_examples=8, deadline=None)
@given(
    profile=st.sampled_from([PROFILE, None]),
    env=st.fixed_dictionaries({}, optional={**_fusion, **_rerank, **_env_only}),
    saved=st.fixed_dictionaries({}, optional={**_fusion, **_rerank}),
)
def test_a_single_branch_stage_ignores_the_other_branches_settings(
    built: dict, profile: str | None, env: dict, saved: dict
) -> None:
    runs = _runs_with(built, profile, env, saved, list(BRANCHES))
    for stage in BRANCHES:
        assert runs[stage] == built["runs"][stage], stage


@settings(max_examples=6, deadline=None)
@given(
    profile=st.sampled_from([PROFILE, None]),
    env=st.fixed_dictionaries({}, optional={**_rerank, **_env_only}),
    saved=st.fixed_dictionaries({}, optional=_rerank),
)
def test_the_fused_stage_ignores_the_rerank_settings(built: dict, profile: str | None, env: dict, saved: dict) -> None:
    runs = _runs_with(built, profile, env, saved, ["fused"])
    assert runs["fused"] == built["runs"]["fused"]
