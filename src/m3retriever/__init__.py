"""m3retriever: hybrid retrieval for RAG.

BGE-M3 dense and sparse vectors (one forward pass) in Qdrant, fused in the engine, reranked by
a cross-encoder, with every stage's score on every hit.

The public API is this module and :mod:`m3retriever.plugin`:

* ``m3retriever``: what a user needs: the retriever and its configuration, documents, hits
  and scores, the filter helpers, copying, snapshots and BM25 renormalization, and the errors.
* ``m3retriever.plugin``: what a plugin author needs: the hook marker, the encoder and reranker
  interfaces with their options, specs and factory types, and the helpers the adapters share.

Every other module is internal and may change between releases. Names are imported lazily
(PEP 562), so ``import m3retriever`` loads none of the pipeline, the store or the models.
Names that used to be exported here still resolve for one release, with a
``DeprecationWarning`` naming where they live now.
"""

from m3retriever import _lazy

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as True)

if TYPE_CHECKING:
    from m3retriever.config import Config, SearchConfig, load_config
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
    from m3retriever.ingest.run import IngestReport
    from m3retriever.maintenance.copy import copy_collection
    from m3retriever.maintenance.renormalize import renormalize
    from m3retriever.maintenance.snapshot import restore_snapshot, snapshot_collection
    from m3retriever.opening import OpenedCollection, open_collection
    from m3retriever.retriever import Retriever
    from m3retriever.types import ChunkSpan, Document, Hit, Passage, SearchResult, StageScores, StoredDocument

__version__ = "0.1.0"

__all__ = [
    # retriever and settings
    "Retriever",
    "Config",
    "SearchConfig",
    "load_config",
    # documents, results, scores
    "Document",
    "SearchResult",
    "Hit",
    "StageScores",
    "IngestReport",
    "StoredDocument",
    "Passage",
    "ChunkSpan",
    # filters
    "Filter",
    "Eq",
    "AnyOf",
    "Range",
    "Not",
    "And",
    "parse_filter",
    # operations on a collection
    "open_collection",
    "OpenedCollection",
    "copy_collection",
    "snapshot_collection",
    "restore_snapshot",
    "renormalize",
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

# the module that defines each public name (tests/test_public_api.py checks they match)
_PUBLIC: dict[str, str] = {
    name: module
    for module, names in {
        "m3retriever.retriever": ("Retriever",),
        "m3retriever.config": ("Config", "SearchConfig", "load_config"),
        "m3retriever.types": (
            "Document", "SearchResult", "Hit", "StageScores", "StoredDocument", "Passage", "ChunkSpan",
        ),
        "m3retriever.ingest.run": ("IngestReport",),
        "m3retriever.filters": ("Filter", "Eq", "AnyOf", "Range", "Not", "And", "parse_filter"),
        "m3retriever.maintenance.copy": ("copy_collection",),
        "m3retriever.maintenance.snapshot": ("snapshot_collection", "restore_snapshot"),
        "m3retriever.maintenance.renormalize": ("renormalize",),
        "m3retriever.opening": ("open_collection", "OpenedCollection"),
        "m3retriever.errors": (
            "M3RetrieverError", "ConfigError", "InputError", "ModelNotFoundError",
            "MissingDependencyError", "BrokenDependencyError", "StoreError", "StoreInUseError",
            "CollectionNotFoundError", "DamagedSnapshotError", "FingerprintMismatchError",
            "PluginError",
        ),
    }.items()
    for name in names
}

# names exported here before the public API was narrowed -> where to import them from now;
# they resolve, with a DeprecationWarning, for one release
_MOVED: dict[str, str] = {
    **dict.fromkeys(
        (
            "Encoder", "EncoderOptions", "EncoderSpec", "LengthNormalizedEncoder", "Encoding",
            "SparseVector", "LengthStats", "Distance", "SparseKind", "Reranker",
            "RerankerOptions", "RerankerSpec", "EncoderFactory", "RerankerFactory",
            "AdapterFactory", "hookimpl",
        ),
        "m3retriever.plugin",
    ),
    "resolve": "m3retriever.config.resolution",
    "Profile": "m3retriever.config.profiles",
    "PROFILES": "m3retriever.config.profiles",
    "Chunk": "m3retriever.types",
    "RenormalizeReport": "m3retriever.maintenance.renormalize",
    "CopyReport": "m3retriever.maintenance.copy",
    "SnapshotReport": "m3retriever.maintenance.snapshot",
}


if not TYPE_CHECKING:
    __getattr__, __dir__ = _lazy.exports(__name__, _PUBLIC, __all__, _MOVED)
