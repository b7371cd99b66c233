"""Ingest beyond one machine: encoding on a Ray cluster (the ``ray`` extra).

:func:`ray_ingest` reads and validates documents as a local ingest does, encodes them in a pool
of Ray actors (each loading the collection's encoders once) and writes them through the local
ingest's own write path, so the collection equals the one a local ingest builds (same point
ids, payloads, vectors, content-hash skip, fingerprint and length totals). Ray is imported only
when an ingest runs.
"""

from __future__ import annotations

from m3retriever.distributed.cluster import RayOptions
from m3retriever.distributed.ingest import RayIngestError, ray_ingest

__all__ = ["RayOptions", "RayIngestError", "ray_ingest"]
