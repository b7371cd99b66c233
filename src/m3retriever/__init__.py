"""m3retriever: hybrid retrieval for RAG.

BGE-M3 dense and sparse vectors (one forward pass) in Qdrant, fused in the engine, reranked by
a cross-encoder, with every stage's score on every hit.

Everything a user or a plugin author needs is importable from here: the retriever and its
configuration, documents, hits and scores, filters, the encoder and reranker interfaces with
their options, specs and factory types, the hook marker, and the errors.
"""

from m3retriever.config import Config, SearchConfig, load_config
from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec, LengthNormalizedEncoder
from m3retriever.errors import (
    BrokenDependencyError,
    CollectionNotFoundError,
    ConfigError,
    DamagedSnapshotError,
    FingerprintMismatchError,
    InputError,
    M3RetrieverError,
    MissingDependencyError,
    ModelNotFoundError,
    PluginError,
    StoreError,
    StoreInUseError,
)
from m3retriever.filters import And, AnyOf, Eq, Filter, Not, Range, parse_filter
from m3retriever.hookspecs import AdapterFactory, EncoderFactory, RerankerFactory, hookimpl
from m3retriever.ingest import IngestReport
from m3retriever.profiles import PROFILES, Profile
from m3retriever.renormalize import RenormalizeReport, renormalize
from m3retriever.rerankers.base import Reranker, RerankerOptions, RerankerSpec
from m3retriever.resolution import resolve
from m3retriever.retriever import Retriever
from m3retriever.snapshot import SnapshotReport, restore_snapshot, snapshot_collection
from m3retriever.transfer import CopyReport, copy_collection
from m3retriever.types import (
    Chunk,
    Distance,
    Document,
    Encoding,
    Hit,
    LengthStats,
    SearchResult,
    SparseKind,
    SparseVector,
    StageScores,
)

__all__ = [
    # retriever and settings
    "Retriever",
    "Config",
    "SearchConfig",
    "load_config",
    "resolve",
    "Profile",
    "PROFILES",
    # documents, results, scores
    "Document",
    "Chunk",
    "Hit",
    "SearchResult",
    "StageScores",
    "IngestReport",
    # BM25 length normalisation
    "renormalize",
    "RenormalizeReport",
    "LengthStats",
    # moving a collection: copy between stores, snapshots of embedded ones
    "copy_collection",
    "CopyReport",
    "snapshot_collection",
    "restore_snapshot",
    "SnapshotReport",
    # filters
    "Filter",
    "Eq",
    "AnyOf",
    "Range",
    "Not",
    "And",
    "parse_filter",
    # plugin interfaces
    "Encoder",
    "EncoderOptions",
    "EncoderSpec",
    "LengthNormalizedEncoder",
    "Encoding",
    "SparseVector",
    "Distance",
    "SparseKind",
    "Reranker",
    "RerankerOptions",
    "RerankerSpec",
    "EncoderFactory",
    "RerankerFactory",
    "AdapterFactory",
    "hookimpl",
    # errors
    "M3RetrieverError",
    "ConfigError",
    "InputError",
    "ModelNotFoundError",
    "MissingDependencyError",
    "BrokenDependencyError",
    "StoreError",
    "StoreInUseError",
    "CollectionNotFoundError",
    "DamagedSnapshotError",
    "FingerprintMismatchError",
    "PluginError",
]

__version__ = "0.1.0"
