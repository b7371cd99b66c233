"""A retriever scoped to a tenant reads its tenant's chunks only, in the commands that read the
collection beyond a search: ``finetune`` (the query generator's chunks, the training pairs and
the held-back corpus; it used to scroll the whole collection), ``eval``'s stage runs and
``tune``'s rankings. Two tenants share one embedded collection, with one doc id in common."""

from __future__ import annotations

import pytest

from m3retriever import Retriever, hookimpl, load_config, plugins
from m3retriever.evaluation.runner import stage_runs
from m3retriever.evaluation.tune_sweep import BranchCache
from m3retriever.finetune import finetune
from test_finetune import FAST, TINY, tiny_st  # noqa: F401  (tiny_st: a fixture, used by name)

ACME = {
    "shared": "Kiwi and mango grow in the orchard near the river.",
    "a1": "Papaya smoothies are sold at the harbor market every morning.",
    "a2": "Guava jam needs slow cooking and a little lemon juice.",
    "a3": "Lychee trees flower early in a warm spring.",
}
GLOBEX = {
    "shared": "Granite and basalt are quarried in the northern hills.",
    "g1": "Marble floors polish well but stain under red wine.",
    "g2": "Slate roofs last a century when the nails hold.",
}
QUERIES = {"q1": "kiwi orchard", "q2": "marble floors", "q3": "slate roofs", "q4": "guava jam"}


@pytest.fixture(scope="module")
def two_tenants(tiny_settings: dict, tmp_path_factory: pytest.TempPathFactory):
    """One embedded collection holding tenants acme and globex; yields the retriever scoped to
    acme."""
    location = str(tmp_path_factory.mktemp("two-tenants"))
    r = Retriever(load_config(env={}, location=location, tenant_field="tenant", **{**tiny_settings, **TINY}))
    for tenant, docs in (("acme", ACME), ("globex", GLOBEX)):
        r.scoped(tenant).ingest([{"doc_id": d, "text": t} for d, t in docs.items()])
    assert r.count({"chunk_index": 0}) == len(ACME) + len(GLOBEX)
    acme = r.scoped("acme")
    yield acme
    r.close()


class Recording:
    """A query generator plugin that keeps the (doc id, chunk text) items it is handed."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    @hookimpl
    def register_query_generators(self, register):
        def factory():
            def generate(items):
                self.items.extend(items)
                return [(" ".join(t.split()[:3]), d) for d, t in items]

            return generate

        register("recording", factory)


@pytest.fixture
def recording():
    plugin = Recording()
    pm = plugins.get_plugin_manager()
    pm.register(plugin, name="recording-test")
    yield plugin
    pm.unregister(plugin)


def test_finetune_on_a_scoped_retriever_reads_only_its_tenant(two_tenants, recording, tiny_st, tmp_path):  # noqa: F811
    report = finetune(two_tenants, tmp_path / "m", generate="recording", base_model=str(tiny_st), recipe=FAST)
    # Every chunk the generator saw is one of acme's (the short texts are one chunk each);
    # before the fix globex's chunks came too, its "shared" chunk filed under acme's doc id.
    assert sorted(recording.items) == sorted(ACME.items())
    data = report.manifest["data"]
    assert data["tenant"] == "acme" and data["pairs"] == len(ACME)
    assert f" of {len(ACME)} documents" in data["heldout_corpus"]


def test_finetune_with_labelled_pairs_refuses_another_tenants_document(two_tenants, tiny_st, tmp_path):  # noqa: F811
    from m3retriever.errors import InputError
    from m3retriever.finetune import TrainingData

    pairs = TrainingData("t", "jsonl", {"q1": "marble floors", "q2": "kiwi"}, {"q1": {"g1": 1}, "q2": {"shared": 1}})
    with pytest.raises(InputError, match=r"not in collection .*'g1'"):
        finetune(two_tenants, tmp_path / "m", pairs=pairs, base_model=str(tiny_st), recipe=FAST)


def test_eval_and_tune_rankings_hold_only_the_tenants_documents(two_tenants):
    runs, _ = stage_runs(two_tenants, QUERIES, depth=20)
    assert runs and all(set(ranked) <= set(ACME) for run in runs.values() for ranked in run.values())
    cache = BranchCache(two_tenants, QUERIES, depth=20)
    texts = {t for c in cache.queries.values() for t in c.texts.values()}
    assert texts and texts <= set(ACME.values())
