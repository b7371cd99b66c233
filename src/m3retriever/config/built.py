"""The settings a collection was built with, kept beside its fingerprint (``settings`` in its
metadata): its profile and the encoder settings (:data:`~m3retriever.config.resolution.BUILT`).

Whoever opens the collection later (the CLI, the adapters, ``Retriever``) gets them through
:func:`m3retriever.config.resolution.resolve` without naming the profile again. A collection built
before they were kept has only its fingerprint: its profile is inferred from the encoder names
there (the one profile whose dense, sparse and lexical encoders they are); its models are not
(a fingerprint may name a model in another form than the setting), so a collection built with
models other than its profile's needs them named again.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from m3retriever.config import Config
from m3retriever.config.profiles import PROFILES
from m3retriever.config.resolution import BUILT, resolve, sources
from m3retriever.errors import ConfigError, FingerprintMismatchError
from m3retriever.store.schema import BM25, DENSE, SPARSE, Store

__all__ = ["KEY", "built_values", "explain_mismatch", "infer_profile", "load_built", "settings_in_force"]

logger = logging.getLogger(__name__)

KEY = "settings"
"""The metadata key they are kept under."""


def built_values(settings: Config) -> dict[str, Any]:
    """What to keep with a new collection: the resolved profile and :data:`BUILT` settings."""
    return {"profile": settings.profile, **{name: getattr(settings, name) for name in BUILT}}


def load_built(store: Store, collection: str) -> dict[str, Any]:
    """The settings ``collection`` was built with (empty for no collection).

    Raises:
        ConfigError: if what is kept is not a mapping (a hand-edited file).
    """
    kept = store.metadata(collection).get(KEY)
    if kept is not None:
        if not isinstance(kept, Mapping):
            raise ConfigError(
                f"collection {collection!r}: its kept build settings are not a mapping ({kept!r:.60}); "
                f"remove the {KEY!r} entry from its metadata and name the profile with --profile"
            )
        return {k: v for k, v in kept.items() if k == "profile" or k in BUILT}
    fingerprint = store.collection_fingerprint(collection)
    if not fingerprint:
        return {}
    profile = infer_profile(fingerprint)
    return {"profile": profile} if profile else {}


def _names(fingerprint: Mapping[str, Any]) -> tuple[Any, ...]:
    def name(branch: str) -> Any:
        fp = fingerprint.get(branch)
        return fp.get("name") if isinstance(fp, Mapping) else None

    return name(DENSE), name(SPARSE), name(BM25)


def infer_profile(fingerprint: Mapping[str, Any]) -> str | None:
    """The one profile whose encoders the fingerprint names (``None``: none or several)."""
    wanted = _names(fingerprint)
    matches = []
    for profile in PROFILES:
        c = resolve(Config(profile=profile))
        names = tuple(
            None if n == "none" else n
            for n in (c.dense_encoder, c.sparse_encoder, c.lexical_encoder if c.bm25 else "none")
        )
        if names == wanted:
            matches.append(profile)
    if len(matches) == 1:
        logger.debug("fingerprint names the encoders of profile %r", matches[0])
        return matches[0]
    return None


@contextmanager
def explain_mismatch(built: Mapping[str, Any], settings: Config) -> Iterator[None]:
    """Add to a :class:`FingerprintMismatchError` raised inside that the collection was built
    with another profile than the one named."""
    try:
        yield
    except FingerprintMismatchError as exc:
        profile = built.get("profile")
        if profile and profile != settings.profile:
            raise FingerprintMismatchError(
                f"{exc} (profile: built with {profile!r}, configured {settings.profile!r}; leave the "
                "profile unset to use the collection's)"
            ) from None
        raise


def settings_in_force(
    config: Config, resolved: Config, saved: Mapping[str, Any], built: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Each setting in force, ``{name: {"value": ..., "source": ...}}`` (``search.<name>`` for
    search settings; sources as :func:`m3retriever.config.resolution.sources` names them)."""
    where = sources(config, saved=saved, built=built)
    out: dict[str, dict[str, Any]] = {}
    for name, source in where.items():
        holder: Any = resolved.search if name.startswith("search.") else resolved
        value = getattr(holder, name.split(".", 1)[-1])
        if name == "api_key" and value is not None:
            value = "(set)"
        out[name] = {"value": list(value) if isinstance(value, tuple) else value, "source": source}
    return out
