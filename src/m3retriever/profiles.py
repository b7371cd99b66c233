"""Named profiles: which encoders and reranker a retriever uses, and tuned search defaults."""

from __future__ import annotations

from dataclasses import dataclass

from m3retriever.errors import ConfigError

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """A named set of components.

    Attributes:
        name: Profile name.
        description: One line for ``m3retriever info`` and the docs.
        dense_encoder: Registered encoder for the dense branch (``None``: no dense branch).
        dense_model: Its model (``None``: the encoder's default).
        sparse_encoder: Registered encoder for the learned sparse branch (may be the same as
            ``dense_encoder``: then one forward pass gives both).
        sparse_model: Its model.
        bm25: Add a BM25 branch.
        reranker: Registered reranker (``None``: no rerank stage).
        reranker_model: Its model.
        rerank_weight: Default weight of the rerank score against the fused score (1.0 = rerank
            alone decides the order).
        rerank_depth: Default number of fused candidates to rerank.
        rerank_max_length: Default max tokens per reranked (query, passage) pair.
        rrf_k: Default RRF k.
        query_instruction: Dense query instruction (``None``: the encoder's default).
        dense_weight: RRF weight of the dense branch.
        sparse_weight: RRF weight of the learned sparse branch.
        bm25_weight: RRF weight of the BM25 branch.
    """

    name: str
    description: str
    dense_encoder: str | None
    dense_model: str | None
    sparse_encoder: str | None
    sparse_model: str | None
    bm25: bool
    reranker: str | None
    reranker_model: str | None
    rerank_weight: float = 1.0
    rerank_depth: int = 50
    rerank_max_length: int | None = None
    rrf_k: int = 60
    query_instruction: str | None = None
    dense_weight: float = 1.0
    sparse_weight: float = 1.0
    bm25_weight: float = 1.0


PROFILES: dict[str, Profile] = {
    "bge-m3": Profile(
        name="bge-m3",
        description="Production: BGE-M3 dense + sparse (one forward pass) and bge-reranker-v2-m3.",
        dense_encoder="bge-m3",
        dense_model="BAAI/bge-m3",
        sparse_encoder="bge-m3",
        sparse_model="BAAI/bge-m3",
        bm25=False,
        reranker="cross-encoder",
        reranker_model="BAAI/bge-reranker-v2-m3",
    ),
    "small": Profile(
        name="small",
        description=(
            "Offline English models from PyPI wheels: bge-small-en-v1.5 int8 ONNX (dense), "
            "SPLADE-tiny (sparse), BM25, ms-marco-MiniLM-L-12-v2 int8 ONNX (rerank)."
        ),
        dense_encoder="onnx-dense",
        dense_model=None,
        sparse_encoder="splade",
        sparse_model=None,
        bm25=True,
        reranker="onnx-cross-encoder",
        reranker_model=None,
        # Tuned on SciFact *train* qrels (809 queries; never on test): see docs/benchmarks.md.
        # Dense counts most: RRF k=2 with sparse and BM25 at a quarter and a half of its weight
        # (0.771 nDCG@10 vs 0.747 with k=60 and equal weights), and bge-small without its query
        # instruction (dense alone 0.754 vs 0.747 with it). The web-trained MiniLM reranker
        # alone lowers SciFact (0.725 at 512 tokens vs 0.773 fused, 300 train queries), so its
        # score gets a 0.2 share against the fused score (0.776). Cutting pairs to 128 tokens
        # keeps that quality (0.777 at 512 tokens, best weight) at ~4x the speed on CPU.
        rrf_k=2,
        dense_weight=1.0,
        sparse_weight=0.25,
        bm25_weight=0.5,
        query_instruction="",
        rerank_weight=0.2,
        rerank_depth=10,
        rerank_max_length=128,
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
