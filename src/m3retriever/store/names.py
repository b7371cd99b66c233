"""The names of a collection's vectors (one per branch) and of its indexed payload fields."""

from __future__ import annotations

__all__ = ["DENSE", "SPARSE", "BM25", "MULTIVECTOR", "DENSE2", "INDEXED_FIELDS", "DOCUMENT_INDEXED_FIELDS"]

DENSE = "dense"
SPARSE = "sparse"
BM25 = "bm25"
MULTIVECTOR = "colbert"
"""Name of the late-interaction (ColBERT) multivector, and its key in the fingerprint."""
DENSE2 = "dense2"  # the optional extra dense branch (a fine-tuned model, for example)

# Keyword payload indexes created on every collection.
INDEXED_FIELDS = ("doc_id", "source", "content_hash")
# Keyword payload indexes, also on every collection, on what a folder ingest stores to filter by
# (m3retriever.ingest.document_fields); a collection created before has none: filters still work.
DOCUMENT_INDEXED_FIELDS = ("metadata.folders", "metadata.suffix")
