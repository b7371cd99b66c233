"""A collection partitioned by tenant: the scope filter, and stamping documents with it.

A retriever configured with ``tenant_field`` and ``tenant`` is confined to that tenant: its
scope filter is ANDed with every filter a caller passes (so no caller filter can widen it),
its ingests write the tenant into each document's metadata, and its point ids are derived
from the tenant too, so two tenants' documents with the same id never overwrite each other.
A tenant value holds no control character (:func:`check_tenant_value`), which keeps those ids
unambiguous.
A stored chunk belongs to the tenant its metadata names (:func:`tenant_of`), which is what
the scope's filter matches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from m3retriever.config.checks import tenant_value_problem
from m3retriever.errors import InputError
from m3retriever.filters import And, Eq, Filter
from m3retriever.types import Document
from m3retriever.validation import check_string

__all__ = ["Scope", "tenant_of", "check_tenant_value"]


@dataclass(frozen=True)
class Scope:
    """One tenant of a collection.

    Attributes:
        field: The metadata key holding the tenant.
        tenant: This scope's value of it.
    """

    field: str
    tenant: str

    def __post_init__(self) -> None:
        check_string(self.tenant, "tenant")
        check_tenant_value(self.tenant)

    @property
    def filter(self) -> Filter:
        """The points of this tenant."""
        return Eq(self.field, self.tenant)

    def within(self, flt: Filter | None) -> Filter:
        """``flt`` confined to this tenant (the scope alone when ``flt`` is ``None``)."""
        return self.filter if flt is None else And((self.filter, flt))

    def stamp(self, doc: Document) -> Document:
        """``doc`` with the tenant in its metadata.

        Raises:
            InputError: if the document's metadata names another tenant.
        """
        value: Any = doc.metadata.get(self.field)
        if value is not None and value != self.tenant:
            raise InputError(
                f"document {doc.doc_id!r}: metadata {self.field!r} is {value!r:.60}, but this "
                f"retriever is scoped to tenant {self.tenant!r}; leave the key out (it is set "
                "for you) or ingest through a retriever scoped to that tenant"
            )
        if value == self.tenant:
            return doc
        return replace(doc, metadata={**doc.metadata, self.field: self.tenant})


def tenant_of(payload: Mapping[str, Any], field: str) -> str | None:
    """The tenant a stored chunk belongs to: the string its metadata holds under ``field``
    (``None``: no such key, or a value that is not a string, which no scope can name)."""
    metadata = payload.get("metadata")
    value = metadata.get(field) if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) else None


def check_tenant_value(tenant: str, where: str = "") -> str:
    """``tenant`` if it can name a tenant: no control character, so that the point ids derived
    from it (:func:`m3retriever.ingest.point_id`) never equal another tenant's.

    Args:
        tenant: The value.
        where: What holds it, for the message (e.g. ``"document 'x': metadata 'tenant'"``).

    Raises:
        InputError: naming the character and its position.
    """
    problem = tenant_value_problem(tenant)
    if problem is not None:
        raise InputError(f"{where}: {problem}" if where else problem)
    return tenant
