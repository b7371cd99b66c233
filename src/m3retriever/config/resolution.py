"""One resolution of settings: a configuration with its profile's defaults filled in.

Components, search and the retriever read the resolved configuration only; no other module
applies a profile default. Which settings a profile may set, and what an unset one becomes
without a profile value, is declared on the fields of :class:`~m3retriever.config.Config`
and :class:`~m3retriever.config.SearchConfig` (``None`` defaults; ``otherwise``/``follows``
in their metadata), so a new setting is added to its dataclass and its docs, nowhere else.
"""

from __future__ import annotations

from dataclasses import MISSING, fields, replace
from typing import Any, Mapping, TypeVar

from m3retriever.config import DEFAULT_PROFILE, Config, SearchConfig, coerce_setting
from m3retriever.config.profiles import PROFILES, Profile, get_profile
from m3retriever.config.settings import Settings
from m3retriever.errors import ConfigError

__all__ = ["BUILT", "Source", "resolve", "sources", "follow_collection", "check_rescoring"]

BUILT = (
    "dense_encoder",
    "dense_model",
    "sparse_encoder",
    "sparse_model",
    "bm25",
    "lexical_encoder",
    "dims",
    "distance",
)
"""The settings that shape a collection's vectors, kept with it (besides its profile) and used
when a configuration leaves them unset."""

Source = str
"""Where a setting's value comes from: ``explicit``, ``collection``, ``profile`` or ``default``."""

T = TypeVar("T")


def resolve(
    config: Config,
    *,
    saved: Mapping[str, Any] | None = None,
    built: Mapping[str, Any] | None = None,
    **search: Any,
) -> Settings:
    """Fill every unset setting of ``config``: the one resolution the components, the search
    and the retriever read.

    A setting left ``None`` takes the profile's value (unless it follows a setting the user
    set: a profile's model belongs to the profile's encoder), else its own default
    (``otherwise`` in the field). Then: component names ``""`` become ``"none"``; a lexical
    encoder ``"none"`` turns ``bm25`` off; without a reranker, ``search.rerank`` is off.
    An unset ``multivector`` is on when ``search.multivector_rescore`` is set true (rescoring
    needs the multivectors); an unset ``search.multivector_rescore`` follows ``multivector``.
    Resolving a resolved configuration changes nothing.

    A collection's own search defaults (``saved``, checked by
    :func:`m3retriever.config.saved.check_saved`) come between the user's values and the
    profile's: explicit > collection's own > profile > field default. So do the settings an
    existing collection was built with (``built``: its ``profile`` and the :data:`BUILT`
    settings): a configuration that names no profile takes the collection's, and its unset
    encoder settings the collection's. One that names another profile takes nothing from the
    collection (its encoders then differ from the collection's, which the store refuses,
    naming the setting).

    Args:
        config: The configuration.
        saved: The collection's own search defaults (``None``: none).
        built: The settings the collection was built with (``None``: a new collection).
        **search: Search settings for one call, applied over ``config.search`` first.

    Returns:
        The :class:`~m3retriever.config.settings.Settings` in force: only settings whose
        ``None`` has a meaning stay ``None`` (a model: the encoder's default;
        ``query_instruction``: the encoder's; ``min_score``...).

    Raises:
        ConfigError: for an unknown search option, a profile that sets something it cannot,
            ``min_score`` without reranking, or multivector rescoring without the
            multivectors.
    """
    if search:
        known = {f.name for f in fields(SearchConfig)}
        unknown = sorted(set(search) - known)
        if unknown:
            raise ConfigError(f"unknown search option(s) {unknown}; known options: {sorted(known)}")
        config = replace(config, search=replace(config.search, **search))
        if search.get("rerank") is False and search.get("min_score") is None:
            # A call without reranking has no calibrated score to cut at: a configured
            # min_score does not apply to it (one given with the call is still refused).
            config = replace(config, search=replace(config.search, min_score=None))
    if saved:
        config = _own(config, saved)
    if built:
        config = _built(config, built)
    if config.multivector is None and config.search.multivector_rescore:
        config = replace(config, multivector=True)
    if config.profile is None:
        config = replace(config, profile=DEFAULT_PROFILE)
    defaults = _profile_defaults(str(config.profile))
    top = _fill(config, defaults)
    names: dict[str, Any] = {
        f.name: _component(getattr(top, f.name)) for f in fields(Config) if f.metadata.get("component")
    }
    top = replace(top, **names)
    if top.lexical_encoder == "none" and top.bm25:
        top = replace(top, bm25=False)
    s = _fill(top.search, defaults.get("search", {}))
    if top.reranker == "none" and s.rerank:
        s = replace(s, rerank=False)
    if s.min_score is not None and not s.rerank:
        raise ConfigError(
            "min_score applies to the calibrated rerank score, but reranking is off; "
            "enable a reranker or drop min_score"
        )
    if s.multivector_rescore is None:
        s = replace(s, multivector_rescore=bool(top.multivector))
    check_rescoring(top.collection, bool(top.multivector), s.multivector_rescore)
    if s.fusion == "zscore" and s.multivector_rescore:
        raise ConfigError(
            "search.fusion 'zscore' fuses the branches' own rankings outside the engine, and "
            "multivector (MaxSim) rescoring reads the engine's fused candidates: set "
            "search.fusion = 'rrf' to rescore, or turn search.multivector_rescore off"
        )
    return Settings.of(replace(top, search=s))


def check_rescoring(collection: str, stored: bool, rescore: bool | None) -> None:
    """Refuse multivector rescoring for a collection without the multivectors.

    Args:
        collection: The collection's name (for the message).
        stored: Whether the collection stores (or will store) the multivectors.
        rescore: The resolved ``search.multivector_rescore``.

    Raises:
        ConfigError: ``rescore`` is on and ``stored`` is not; the message says to re-ingest.
    """
    if rescore and not stored:
        raise ConfigError(
            f"search.multivector_rescore needs the late-interaction (ColBERT) vectors, but "
            f"collection {collection!r} is built (or configured) without them (multivector = "
            "false); set multivector = true and re-ingest into a new collection (or delete this "
            "one and ingest again), or leave search.multivector_rescore unset"
        )


def follow_collection(config: Config, multivector: bool | None, chunk_headers: str | None = None) -> Config:
    """``config`` with its unset collection-level settings taken from the collection as built.

    ``multivector`` and ``chunk_headers`` left unset follow an existing collection, so a
    collection built with or without the multivectors (or the chunk headers) opens with the
    same configuration, whatever the profile's default for new collections (explicit > the
    collection's > the profile's > the field's default).

    Args:
        config: The configuration as given.
        multivector: Whether the existing collection stores the multivectors (``None``: no
            collection yet).
        chunk_headers: The chunk headers its vectors were encoded with (``None``: no
            collection yet).
    """
    if multivector is not None and config.multivector is None:
        config = replace(config, multivector=multivector)
    if chunk_headers is not None and config.chunk_headers is None:
        config = replace(config, chunk_headers=chunk_headers)  # type: ignore[arg-type]
    return config


def _own(config: Config, saved: Mapping[str, Any]) -> Config:
    """``config`` with its unset settings taken from the collection's own defaults."""
    top = {k: v for k, v in saved.items() if k == "query_instruction" and config.query_instruction is None}
    search = {k: v for k, v in saved.items() if k != "query_instruction" and getattr(config.search, k) is None}
    return replace(config, search=replace(config.search, **search), **top)


def _built(config: Config, built: Mapping[str, Any]) -> Config:
    """``config`` with its profile and unset :data:`BUILT` settings taken from the collection's
    (nothing when it names another profile; a setting that follows one the user set stays
    unset, as with a profile).

    A kept encoder (a setting others follow) equal to the profile's own stays unset too: it is
    the profile's, as when the collection was built, so the settings that follow it and are
    not kept still take the profile's values (``query_instruction`` follows the dense
    encoder: taken as named, the ``small`` profile's encoder would give queries the encoder's
    instruction instead of the profile's once the collection exists)."""
    profile = built.get("profile")
    if config.profile is not None and config.profile != profile:
        return config
    if profile is not None and profile not in PROFILES:
        raise ConfigError(
            f"collection {config.collection!r} was built with profile {profile!r}, which is not "
            f"known here (known: {sorted(PROFILES)}); name the profile to use with --profile"
        )
    own = {f.name: f for f in fields(Config)}
    followed = {f.metadata["follows"] for f in own.values() if f.metadata.get("follows")}
    profile_values = _profile_defaults(str(config.profile or profile or DEFAULT_PROFILE))
    changes: dict[str, Any] = {"profile": profile} if config.profile is None and profile else {}
    for name in BUILT:
        follows = own[name].metadata.get("follows")
        if getattr(config, name) is None and built.get(name) is not None:
            if name in followed and name in profile_values and profile_values[name] == built[name]:
                continue
            if follows is None or getattr(config, follows) is None:
                changes[name] = built[name]
    return replace(config, **changes) if changes else config


def sources(
    config: Config, *, saved: Mapping[str, Any] | None = None, built: Mapping[str, Any] | None = None
) -> dict[str, Source]:
    """Where each setting :func:`resolve` gives comes from, by name (``search.<name>`` for
    search settings): ``explicit`` (set by the user; a setting with a non-``None`` default
    counts as set when it differs from its default), ``collection`` (the collection's own
    search defaults or the settings it was built with), ``profile`` or ``default``."""
    given = _own(config, saved) if saved else config
    given = _built(given, built) if built else given
    profile = given.profile or DEFAULT_PROFILE
    defaults = _profile_defaults(profile)
    out: dict[str, Source] = {}
    for user, coll, profile_values, prefix in (
        (config, given, defaults, ""),
        (config.search, given.search, defaults.get("search", {}), "search."),
    ):
        for f in fields(user):  # type: ignore[arg-type]
            if f.name == "search":
                continue
            mine, theirs = getattr(user, f.name), getattr(coll, f.name)
            follows = f.metadata.get("follows")
            if f.default is not None and f.default is not MISSING:
                out[prefix + f.name] = "default" if mine == f.default else "explicit"
            elif mine is not None:
                out[prefix + f.name] = "explicit"
            elif theirs is not None:
                out[prefix + f.name] = "collection"
            elif f.name in profile_values and (follows is None or getattr(coll, follows) is None):
                out[prefix + f.name] = "profile"
            else:
                out[prefix + f.name] = "default"
    return out


def _component(name: str | None) -> str | None:
    return "none" if name == "" else name


def _fill(settings: T, defaults: Mapping[str, Any]) -> T:
    """``settings`` with each ``None`` field set from ``defaults``, then from its ``otherwise``."""
    own = {f.name: getattr(settings, f.name) for f in fields(settings)}  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for f in fields(settings):  # type: ignore[arg-type]
        follows = f.metadata.get("follows")
        if own[f.name] is None and f.name in defaults and (follows is None or own[follows] is None):
            changes[f.name] = defaults[f.name]
    first = replace(settings, **changes) if changes else settings  # type: ignore[type-var]
    later: dict[str, Any] = {}
    for f in fields(first):  # type: ignore[arg-type]
        otherwise = f.metadata.get("otherwise")
        if getattr(first, f.name) is None and otherwise is not None:
            later[f.name] = otherwise(first) if callable(otherwise) else otherwise
    return replace(first, **later) if later else first  # type: ignore[type-var]


_checked: dict[str, tuple[Profile, Mapping[str, Any]]] = {}


def _profile_defaults(name: str) -> Mapping[str, Any]:
    """The profile's settings, checked against the fields once per profile object."""
    profile = get_profile(name)
    hit = _checked.get(name)
    if hit is not None and hit[0] is profile:
        return hit[1]
    settings = dict(profile.settings)
    for cls, values, prefix in (
        (Config, {k: v for k, v in settings.items() if k != "search"}, ""),
        (SearchConfig, dict(settings.get("search") or {}), "search."),
    ):
        known = {f.name: f for f in fields(cls) if f.default is None}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"profile {name!r} sets {prefix + key!r}, which is not a setting a profile "
                    f"can default; it can set: {sorted(prefix + k for k in known)}"
                )
            coerce_setting(f"profile {name!r}: {prefix}{key}", value, known[key].type)
    SearchConfig(**dict(settings.get("search") or {}))  # range checks
    _checked[name] = (profile, settings)
    return settings
