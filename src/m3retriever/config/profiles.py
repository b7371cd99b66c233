"""Named profiles: defaults for the settings of :class:`~m3retriever.config.Config`.

A profile is a name, a description and a mapping shaped like a configuration file: top-level
``Config`` fields and a ``"search"`` mapping of ``SearchConfig`` fields. It lists the same
settings a user sets, nothing else; :func:`m3retriever.config.resolve` fills each setting
left unset (``None``) from the profile, once, and checks the profile against the dataclass
fields (an unknown name or a wrong type is a ``ConfigError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from m3retriever.errors import ConfigError

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """A named set of defaults.

    Attributes:
        name: Profile name.
        description: One line for ``m3retriever collection info`` and the docs.
        settings: Default per setting, keyed like a configuration file: ``Config`` field
            names, and ``"search"`` holding ``SearchConfig`` field names. Only settings whose
            own default is ``None`` ("the profile's") can be given.
    """

    name: str
    description: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        """The profile's value of a setting: ``"rerank_max_length"``, ``"search.rrf_k"``...

        Args:
            name: A ``Config`` field, or ``"search."`` and a ``SearchConfig`` field.
            default: Returned when the profile does not set it.
        """
        section, _, key = name.rpartition(".")
        table = self.settings.get(section) or {} if section else self.settings
        return table.get(key, default)


PROFILES: dict[str, Profile] = {
    "bge-m3": Profile(
        name="bge-m3",
        description="Production: BGE-M3 dense + sparse (one forward pass) and bge-reranker-v2-m3.",
        settings={
            # The sparse branch names the dense encoder: one BGE-M3 instance (and model) serves
            # both, so one forward pass gives both vectors.
            "dense_encoder": "bge-m3",
            "dense_model": "BAAI/bge-m3",
            "sparse_encoder": "bge-m3",
            "bm25": False,
            "reranker": "cross-encoder",
            "reranker_model": "BAAI/bge-reranker-v2-m3",
            # Pairs of at most 512 tokens (the query keeps up to 384, the passage the rest):
            # chunks are 512 tokens, so this holds a whole chunk but for the query's tokens, as
            # BAAI's reference code scores bge-reranker-v2-m3. Measured with random weights on
            # 2 CPU threads (docs/benchmarks.md, "Production models' speed"), pairs/s at
            # 128/256/512/1024 tokens: torch fp32 1.81/0.91/0.44/0.21, ONNX int8
            # 9.5/4.1/1.7/0.56. Past 512 a pair costs 2-3x more for the few chunk tokens it
            # would keep; 256 halves the cost but drops half of every full chunk.
            "rerank_max_length": 512,
        },
    ),
    "bge-m3-cpu": Profile(
        name="bge-m3-cpu",
        description=(
            "BGE-M3 and bge-reranker-v2-m3 as int8 ONNX exports on CPU (no torch at run time; "
            "write them with `m3retriever model export-onnx ... --int8`)."
        ),
        # The directories `m3retriever model export-onnx BAAI/bge-m3 ~/.cache/m3retriever/onnx/bge-m3-int8
        # --int8` (and the reranker's) write; dense_model / reranker_model point elsewhere.
        settings={
            "dense_encoder": "bge-m3-onnx",
            "dense_model": "~/.cache/m3retriever/onnx/bge-m3-int8",
            "sparse_encoder": "bge-m3-onnx",
            "bm25": False,
            "reranker": "onnx-cross-encoder",
            "reranker_model": "~/.cache/m3retriever/onnx/bge-reranker-v2-m3-int8",
            # The same 512-token pairs as `bge-m3` (same chunks, same reason). On 2 CPU cores an
            # int8 pair of 512 tokens costs 0.6 s (docs/benchmarks.md), so a depth-10 rerank
            # is several seconds: lower `search.rerank_depth`, not the pair length, to go
            # faster (a shorter pair silently drops the end of every full chunk).
            "rerank_max_length": 512,
        },
    ),
    "small": Profile(
        name="small",
        description=(
            "Offline English models from PyPI wheels: bge-small-en-v1.5 int8 ONNX (dense), "
            "SPLADE-tiny (sparse), BM25, ms-marco-MiniLM-L-12-v2 int8 ONNX (rerank)."
        ),
        # Chosen to transfer, not to win SciFact (docs/benchmarks.md, "Defaults that transfer"):
        # RRF k=10 with dense 1.0 / SPLADE 0.5 / BM25 0.5 and the reranker at a 0.3 share. The
        # earlier k=2, 1/0.25/0.5 (best on SciFact train) put the fused top in the hands of each
        # branch's first hits and fell below dense alone on a held-out collection. nDCG@10 minus
        # the best single branch (fused / default pipeline): SciFact train +0.006 / +0.007
        # (k=2: +0.011 / +0.013; k=60: -0.003), XQuAD-R en +0.031 / +0.046, and XQuAD-R de, a
        # stress test where the English dense model is weak, +0.032 / +0.041 (k=2: +0.009).
        # Rerank weight: the largest (of 0.2/0.3/0.5) not below the fused list on SciFact train,
        # where the web-trained MiniLM alone is worse than fusion; QA collections gain from it.
        # bge-small without its query instruction (dense 0.754 vs 0.747 with it on SciFact
        # train); rerank pairs of 128 tokens reading the window of a chunk that holds the
        # query's words (`rerank_window = "match"`, the default: on SciFact test the reranker
        # alone gains +0.049 nDCG@10 over reading each chunk's first 128 tokens, level with
        # 512-token pairs at a third of their cost; docs/benchmarks.md, "What the reranker reads").
        settings={
            "dense_encoder": "onnx-dense",
            "sparse_encoder": "splade",
            "bm25": True,
            "lexical_encoder": "bm25",
            "reranker": "onnx-cross-encoder",
            "query_instruction": "",
            "rerank_max_length": 128,
            "search": {
                # Fused by standardised scores (docs/benchmarks.md, "Fusion by scores"): on CoSQA
                # test (web queries against Python functions, both lexical branches weak) the
                # pipeline is 0.032 below dense alone where RRF was 0.078 below; XQuAD-R en/de
                # stay 0.047 / 0.031 above their best branch. The weights below are RRF's.
                "fusion": "zscore",
                "rrf_k": 10,
                "dense_weight": 1.0,
                "sparse_weight": 0.5,
                "bm25_weight": 0.5,
                "rerank_weight": 0.3,
                "rerank_depth": 10,
                # The reranker's logit through Platt scaling fitted on SciFact train (8,090
                # reranked candidates, `match` windows; tests/benchmarks/bench_calibration.py):
                # held-back errors in docs/benchmarks.md, "Confidence".
                "confidence_slope": 0.394,
                "confidence_bias": -2.339,
            },
        },
    ),
}


def get_profile(name: str) -> Profile:
    """Return the profile called ``name``.

    Raises:
        ConfigError: if there is no such profile (the message lists the known ones).
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"unknown profile {name!r}; choose one of {sorted(PROFILES)}"
        ) from None
