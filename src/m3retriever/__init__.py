"""m3retriever: hybrid retrieval for RAG.

BGE-M3 dense and sparse vectors (one forward pass) in Qdrant, fused in the engine, reranked by
a cross-encoder, with every stage's score on every hit.
"""

from m3retriever.config import Config, SearchConfig, load_config
from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec
from m3retriever.errors import (
    ConfigError,
    FingerprintMismatchError,
    InputError,
    M3RetrieverError,
    MissingDependencyError,
    BrokenDependencyError,
    ModelNotFoundError,
    PluginError,
    StoreError,
    StoreInUseError,
)
from m3retriever.filters import AnyOf, Eq, Not, Range, parse_filter
from m3retriever.hookspecs import hookimpl
from m3retriever.ingest import IngestReport
from m3retriever.profiles import PROFILES, Profile
from m3retriever.rerankers.base import Reranker, RerankerOptions, RerankerSpec
from m3retriever.retriever import Retriever
from m3retriever.types import Document, Hit, SearchResult, SparseVector, StageScores

__all__ = [
    "Retriever",
    "Config",
    "SearchConfig",
    "load_config",
    "Document",
    "Hit",
    "SearchResult",
    "StageScores",
    "SparseVector",
    "IngestReport",
    "Eq",
    "AnyOf",
    "Range",
    "Not",
    "parse_filter",
    "Encoder",
    "EncoderOptions",
    "EncoderSpec",
    "Reranker",
    "RerankerOptions",
    "RerankerSpec",
    "Profile",
    "PROFILES",
    "hookimpl",
    "M3RetrieverError",
    "ConfigError",
    "InputError",
    "ModelNotFoundError",
    "MissingDependencyError",
    "BrokenDependencyError",
    "StoreError",
    "StoreInUseError",
    "FingerprintMismatchError",
    "PluginError",
]

__version__ = "0.1.0"
