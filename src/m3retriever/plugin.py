"""The public API for plugin authors (see docs/plugins.md).

A plugin implements hooks with :data:`hookimpl` and registers factories that build an
:class:`Encoder` (or a :class:`LengthNormalizedEncoder`), a :class:`Reranker`, a framework
adapter, a query generator or a file reader. The adapters shipped in ``plugins/`` import only from here and
from :mod:`m3retriever`, and so can a third party's: every other module of the package is
internal and may change between releases.

Besides the interfaces, an adapter gets the helpers that keep it consistent with the library:
``text_id`` (the id ``Retriever.add_texts`` gives a text), ``hit_metadata`` and
``clean_metadata`` (a hit's metadata with its stage scores, a framework's metadata made
storable), and the input checks and limits the library applies (``check_query``,
``check_doc_id``, ``check_field``, ``check_source``, ``MAX_*``, ``INT64_*``).

Names are imported lazily (PEP 562): importing this module loads nothing else.
"""

from m3retriever import _lazy

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers read it as True)

if TYPE_CHECKING:
    from m3retriever.cli.registry import CommandLine, command_config
    from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec, LengthNormalizedEncoder
    from m3retriever.hookspecs import (
        AdapterFactory,
        EncoderFactory,
        QueryGeneratorFactory,
        ReaderFactory,
        RerankerFactory,
        hookimpl,
    )
    from m3retriever.ingest import text_id
    from m3retriever.metadata import CONFIDENCE_KEY, MATCHED_TERMS_KEY, SCORES_KEY, clean_metadata, hit_metadata
    from m3retriever.readers.base import ReadDocument, Reader, Section, TextBuilder, UnreadableFile
    from m3retriever.rerankers.base import Reranker, RerankerOptions, RerankerSpec
    from m3retriever.types import Distance, Encoding, LengthStats, SparseKind, SparseVector
    from m3retriever.validation import (
        INT64_MAX,
        INT64_MIN,
        MAX_ID_CHARS,
        MAX_METADATA_DEPTH,
        MAX_QUERY_CHARS,
        MAX_SOURCE_CHARS,
        check_doc_id,
        check_field,
        check_query,
        check_source,
    )

__all__ = [
    # hooks and the factories they register
    "hookimpl",
    "EncoderFactory",
    "RerankerFactory",
    "AdapterFactory",
    "QueryGeneratorFactory",
    "ReaderFactory",
    # file readers (register_readers)
    "Reader",
    "ReadDocument",
    "Section",
    "TextBuilder",
    "UnreadableFile",
    # commands (register_commands)
    "CommandLine",
    "command_config",
    # encoders
    "Encoder",
    "LengthNormalizedEncoder",
    "EncoderOptions",
    "EncoderSpec",
    "Encoding",
    "SparseVector",
    "LengthStats",
    "Distance",
    "SparseKind",
    # rerankers
    "Reranker",
    "RerankerOptions",
    "RerankerSpec",
    # adapters: ids and metadata as the library makes them
    "text_id",
    "hit_metadata",
    "clean_metadata",
    "SCORES_KEY",
    "MATCHED_TERMS_KEY",
    "CONFIDENCE_KEY",
    # adapters: the library's input checks and limits
    "check_query",
    "check_doc_id",
    "check_field",
    "check_source",
    "MAX_QUERY_CHARS",
    "MAX_ID_CHARS",
    "MAX_SOURCE_CHARS",
    "MAX_METADATA_DEPTH",
    "INT64_MIN",
    "INT64_MAX",
]

# the module that defines each public name (tests/test_public_api.py checks they match)
_PUBLIC: dict[str, str] = {
    name: module
    for module, names in {
        "m3retriever.hookspecs": (
            "hookimpl", "EncoderFactory", "RerankerFactory", "AdapterFactory", "QueryGeneratorFactory",
            "ReaderFactory",
        ),
        "m3retriever.readers.base": ("Reader", "ReadDocument", "Section", "TextBuilder", "UnreadableFile"),
        "m3retriever.cli.registry": ("CommandLine", "command_config"),
        "m3retriever.encoders.base": ("Encoder", "LengthNormalizedEncoder", "EncoderOptions", "EncoderSpec"),
        "m3retriever.types": ("Encoding", "SparseVector", "LengthStats", "Distance", "SparseKind"),
        "m3retriever.rerankers.base": ("Reranker", "RerankerOptions", "RerankerSpec"),
        "m3retriever.ingest": ("text_id",),
        "m3retriever.metadata": ("hit_metadata", "clean_metadata", "SCORES_KEY", "MATCHED_TERMS_KEY", "CONFIDENCE_KEY"),
        "m3retriever.validation": (
            "check_query", "check_doc_id", "check_field", "check_source", "MAX_QUERY_CHARS",
            "MAX_ID_CHARS", "MAX_SOURCE_CHARS", "MAX_METADATA_DEPTH", "INT64_MIN", "INT64_MAX",
        ),
    }.items()
    for name in names
}

if not TYPE_CHECKING:
    __getattr__, __dir__ = _lazy.exports(__name__, _PUBLIC, __all__)
