"""Frozen, typed configuration from code, a TOML file or ``M3R_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from m3retriever.config.checks import FLOAT_FIELDS, INT_FIELDS, check_float, check_int, check_tenant

# Re-exported: other modules import these from here.
from m3retriever.config.checks import MAX_LIMIT as MAX_LIMIT
from m3retriever.config.checks import coerce_setting as coerce_setting
from m3retriever.config.profiles import Profile, get_profile
from m3retriever.config.sizing import auto_index_settings, check_index_values, quantized
from m3retriever.errors import ConfigError
from m3retriever.store.collection_names import check_name

__all__ = ["SearchConfig", "Config", "load_config", "refuse_tenant"]

DEFAULT_PROFILE = "bge-m3"
"""The profile of a new collection when none is named."""

ENV_PREFIX = "M3R_"
# M3R_* variables read elsewhere, not settings of Config (M3R_MCP_TOKEN: the MCP bearer token;
# M3R_ONNX_CACHE: the folder of optimised ONNX graphs, runtime/onnx_cache.py).
NON_CONFIG_PREFIXES = ("M3R_MCP_", "M3R_LOAD_PLUGINS", "M3R_ONNX_CACHE")


def _by_profile(otherwise: Any = None, *, follows: str | None = None, component: bool = False) -> Any:
    """A setting whose ``None`` means "the profile's value".

    Args:
        otherwise: The value when neither the user nor the profile sets it: a constant, or a
            function of the settings (user's, then profile's) resolved so far.
        follows: Another setting this one belongs to: when the user sets that one, the
            profile's value of this one does not apply (a profile's model belongs to the
            profile's encoder).
        component: The setting names a registered component; ``""`` and ``"none"`` disable it.
    """
    return field(default=None, metadata={"otherwise": otherwise, "follows": follows, "component": component})


@dataclass(frozen=True)
class SearchConfig:
    """How a query is run.

    Attributes:
        top_k: Hits returned.
        prefetch_limit: Candidates each branch (dense, sparse, BM25) contributes to fusion
            (``None``: the collection's saved default, else the profile's, else 100).
        rerank_depth: Fused candidates passed to the reranker (``None``: the profile's, else 50).
        fusion: ``"rrf"`` (the engine's weighted reciprocal rank fusion), ``"zscore"`` (each
            branch's scores standardised over its own list, weighted and summed:
            :mod:`m3retriever.search.fusion`; not with ``multivector_rescore``) or ``"dbsf"``
            (the engine's score fusion, unweighted) (``None``: the collection's saved default,
            else the profile's, else ``"rrf"``).
        rrf_k: RRF's k, always sent explicitly (``None``: the profile's, else 60; Qdrant's own
            default is 2).
        dense_weight: RRF weight of the dense branch (``None``: the profile's, else 1).
        sparse_weight: RRF weight of the sparse branch (``None``: the profile's, else 1).
        bm25_weight: RRF weight of the lexical (BM25) branch (``None``: the profile's, else 1).
        dense2_weight: RRF weight of the extra dense branch ``dense2`` (``None``: the
            profile's, else 1; ignored without that branch).
        rerank: Run the rerank stage (when a reranker is configured).
        rerank_weight: Weight of the rerank score in the final score, against the fused score
            (both min-max normalised over the candidates); 1.0 = rerank alone. ``None``: the
            profile's tuned value, else 1.
        min_score: Minimum ``confidence`` (the calibrated rerank probability) a hit needs; when
            none reaches it the result is empty and flagged "no confident match".
        hnsw_ef: HNSW beam for the dense branch (``None`` or 0: ``max(128, 2 * prefetch_limit)``).
        exact: Search exactly instead of through HNSW.
        oversampling: On a quantized collection, candidates fetched from the quantized
            vectors per candidate kept after rescoring (``None``: the profile's, else 2; from
            1 to 100). Ignored by a collection without quantization.
        rescore: On a quantized collection, rescore the candidates with the float vectors
            (``None``: the profile's, else true). Ignored without quantization.
        stage_scores: Also fetch each branch's own ranking (same batch call) to report
            per-stage scores and ranks.
        max_per_doc: At most this many chunks of one document among the hits (``None``: no
            cap); the places left are filled from deeper candidates.
        mmr: Maximal marginal relevance over the candidates: 0 = relevance only, 1 = diversity
            only (``None``: off). Needs the dense branch (similarity of chunk vectors).
        diversity_depth: Candidates ``max_per_doc`` and ``mmr`` choose from (reranked when
            reranking; ``None``: ``max(rerank depth, 3 * top_k)``).
        multivector_rescore: Rescore the fused candidates by late-interaction (ColBERT) MaxSim
            in the same Query API call, before the reranker (``None``: on when the collection
            stores the multivectors, i.e. ``Config.multivector`` is on; ``True`` on a
            collection without them is a ``ConfigError`` that says to re-ingest).
        multivector_depth: Fused candidates the MaxSim rescoring reads (``None``: the
            profile's, else 100; at least the candidates kept after it).
        expand: Give each hit its context (``Hit.context``): its chunk and up to this many
            neighbouring chunks of its document on each side, merged into one passage with
            their overlap removed (0: off; 0 to 20). Read after the ranking, which it leaves
            unchanged.
        adaptive: Weigh each branch per query by how far the other branches agree with its
            first hits (:mod:`m3retriever.search.adaptive`; needs no labels), so a branch that
            is weak for this query counts less in the fusion. The weights used are on each
            result (``SearchResult.branch_weights``). ``None``: the profile's, else off (measured
            level with the fixed weights on the collections here: docs/benchmarks.md).
        rerank_window: What the reranker reads of a chunk longer than its pairs
            (:mod:`m3retriever.search.reading`): ``"first"`` its start, ``"match"`` the window
            holding most of the query's words (centred on them), ``"maxp"`` the best of up to 4 windows spread
            over the chunk (up to 4 pairs per chunk). ``None``: the profile's, else ``"match"``.
        confidence_slope: Calibration of ``confidence`` from the rerank logit:
            ``sigmoid(confidence_slope * logit + confidence_bias)`` (Platt scaling; more than 0,
            at most 100). ``None``: the collection's (``tune`` fits it on labelled queries),
            else the profile's (fitted for its reranker), else 1.
        confidence_bias: The calibration's shift (-100 to 100; ``None``: as ``confidence_slope``,
            else 0).
    """

    top_k: int = 10
    prefetch_limit: int | None = _by_profile(100)
    rerank_depth: int | None = _by_profile(50)
    fusion: Literal["rrf", "zscore", "dbsf"] | None = _by_profile("rrf")
    rrf_k: int | None = _by_profile(60)
    dense_weight: float | None = _by_profile(1.0)
    sparse_weight: float | None = _by_profile(1.0)
    bm25_weight: float | None = _by_profile(1.0)
    dense2_weight: float | None = _by_profile(1.0)
    rerank: bool = True
    rerank_weight: float | None = _by_profile(1.0)
    min_score: float | None = None
    hnsw_ef: int | None = _by_profile(lambda s: max(128, 2 * (s.prefetch_limit or 100)))
    exact: bool = False
    oversampling: float | None = _by_profile(2.0)
    rescore: bool | None = _by_profile(True)
    stage_scores: bool = True
    max_per_doc: int | None = None
    mmr: float | None = None
    diversity_depth: int | None = None
    multivector_rescore: bool | None = None
    multivector_depth: int | None = _by_profile(100)
    expand: int = 0
    adaptive: bool | None = _by_profile(False)
    rerank_window: Literal["first", "match", "maxp"] | None = _by_profile("match")
    confidence_slope: float | None = _by_profile(1.0)
    confidence_bias: float | None = _by_profile(0.0)

    def __post_init__(self) -> None:
        for name, (low, high, optional) in INT_FIELDS.items():
            object.__setattr__(self, name, check_int(name, getattr(self, name), low, high, optional))
        if self.hnsw_ef == 0:
            object.__setattr__(self, "hnsw_ef", None)  # 0 means the default, as None does
        for name in ("rerank", "exact", "stage_scores", "rescore", "adaptive"):
            if not isinstance(getattr(self, name), bool) and not (
                name in ("rescore", "adaptive") and getattr(self, name) is None
            ):
                raise ConfigError(f"search.{name} must be true or false, got {getattr(self, name)!r}")
        if self.oversampling is not None and check_float("oversampling", self.oversampling, 100.0) < 1.0:  # type: ignore[operator]
            raise ConfigError(f"search.oversampling must be between 1 and 100, got {self.oversampling!r}")
        if self.multivector_rescore is not None and not isinstance(self.multivector_rescore, bool):
            raise ConfigError(f"search.multivector_rescore must be true or false, got {self.multivector_rescore!r}")
        if self.fusion not in ("rrf", "zscore", "dbsf", None):
            raise ConfigError(f"search.fusion must be 'rrf', 'zscore' or 'dbsf', got {self.fusion!r}")
        _check_calibration(self.confidence_slope, self.confidence_bias)
        if self.rerank_window not in ("first", "match", "maxp", None):
            raise ConfigError(f"search.rerank_window must be 'first', 'match' or 'maxp', got {self.rerank_window!r}")
        for name, top in FLOAT_FIELDS.items():
            object.__setattr__(self, name, check_float(name, getattr(self, name), top))


def _check_calibration(slope: object, bias: object) -> None:
    """``confidence_slope`` in (0, 100] and ``confidence_bias`` in [-100, 100], or unset."""
    for name, value, low in (("confidence_slope", slope, 0.0), ("confidence_bias", bias, -100.0)):
        if value is None:
            continue
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not low <= number <= 100.0 or (name == "confidence_slope" and number <= 0):
            raise ConfigError(
                f"search.{name} must be a number {'above 0' if low == 0 else 'from -100'} and at most 100, "
                f"got {value!r:.40} (refit it with `m3retriever tune --save` on labelled queries)"
            )


@dataclass(frozen=True)
class Config:
    """Everything a :class:`~m3retriever.Retriever` needs, passed explicitly.

    Settings left ``None`` take the profile's value (see :mod:`m3retriever.config.profiles`), else
    the default named below; :func:`m3retriever.config.resolution.resolve` fills them in.

    Attributes:
        location: Store location: a directory (embedded Qdrant Edge), ``":memory:"`` or a
            Qdrant server URL.
        collection: Collection name.
        api_key: API key for a Qdrant server.
        shard_number: Shards for a new collection on a server/cluster.
        replication_factor: Replicas for a new collection on a cluster.
        profile: ``"bge-m3"`` (production) or ``"small"`` (offline English models)
            (``None``: the profile an existing collection was built with, else ``"bge-m3"``).
        dense_encoder: Registered encoder of the dense branch (``"none"`` disables the branch).
        dense_model: Its model (hub id or local path; ``None``: the profile's when the encoder
            is the profile's, else the encoder's default).
        sparse_encoder: Registered encoder of the sparse branch: any encoder that produces
            sparse vectors (``"none"`` disables the branch).
        sparse_model: Its model (``None``: the profile's when the encoder is the profile's;
            when the sparse and dense encoders are the same, ``dense_model``, so one instance
            serves both).
        bm25: Use the lexical (BM25) branch (``None``: the profile's; with ``lexical_encoder``
            set, true).
        lexical_encoder: Registered encoder of the lexical branch, one with ``sparse_kind``
            ``"bm25"`` (term frequencies; the engine applies IDF). ``None``: the profile's,
            else ``"bm25"``.
        dense2_encoder: Registered encoder of an extra dense branch, ``dense2`` (``None`` or
            ``"none"``: no such branch), for example ``"sentence-transformers"`` with a
            fine-tuned model (``m3retriever model finetune``). It reads the same chunks; add it to an
            existing collection with ``m3retriever collection add-branch``.
        dense2_model: Its model (hub id or local folder; ``None``: the encoder's default).
        reranker: Registered reranker (``"none"`` disables reranking).
        reranker_model: Its model (``None``: the profile's when the reranker is the
            profile's, else the reranker's default).
        device: ``"auto"``, ``"cpu"`` or a CUDA device.
        batch_size: Encoder batch size.
        max_length: Encoder max tokens per text.
        rerank_max_length: Reranker max tokens per (query, passage) pair; passages are cut to
            fit (``None``: the profile's, else ``max_length``).
        max_query_tokens: Tokens of a query the models read: a longer query is cut to this many
            tokens (of the chunking encoder's tokenizer) before any model sees it (``None``:
            ``max_length``). Queries longer than 100,000 characters are refused outright.
        max_document_chars: Longest document text accepted, in characters; a longer one is
            refused with an error before anything is written (``None``: no limit).
        query_instruction: Text the dense encoder prepends to queries (``None``: the profile's
            when the dense encoder is the profile's, else the encoder's default for its model;
            ``""``: none). Queries only: changing it needs no re-ingest.
        dims: Matryoshka truncation of the dense vector (where the model supports it).
        distance: Distance of the dense vector (``None``: the one the encoder declares).
        chunk_tokens: Tokens per chunk.
        chunk_overlap: Tokens shared by consecutive chunks.
        chunk_headers: What the encoders read in front of a chunk's text (never stored in
            it): ``"structured"`` puts the document's title and the chunk's heading path
            (``Tutorial > Query Parameters``) in front of the chunks of documents with a
            structure (read from files: a folder ingest); ``"all"`` in front of every chunk
            of a document with a title or a structure (a JSONL title too); ``"off"``: none.
            ``None``: what an existing collection was built with (``"off"`` for one built
            before the setting), else the profile's, else ``"structured"``. Part of the
            collection's fingerprint when not ``"off"``: changing it needs a re-ingest. The
            chunks of a document that can get a header hold at most ``max_length`` - 36 tokens.
        indexed_fields: Metadata keys to index for fast filtering.
        expected_chunks: How many chunks the collection is expected to hold; picks the index
            settings below when they are unset (see :func:`auto_index_settings`).
        quantization: ``"none"``, ``"scalar"`` (int8, 4x smaller), ``"binary"`` (1 bit, 32x)
            or ``"turbo"`` (TurboQuant 4 bits, 8x): a compressed copy of the dense vectors
            kept in RAM, searched first, the float vectors rescoring the candidates. Fixed at
            creation. ``None``: the collection's own; for a new one, by ``expected_chunks``.
        vectors_on_disk: Memory-map the float dense vectors and the sparse indexes from disk
            instead of holding them in RAM (``None``: as ``quantization``). Fixed at creation.
        payload_on_disk: Keep payloads (chunk texts) on disk (``None``: as
            ``quantization``). Fixed at creation.
        hnsw_m: HNSW graph degree (``None``: the collection's own; new: 16). Fixed at creation.
        hnsw_ef_construct: HNSW build beam (``None``: the collection's own; new: 128). Fixed
            at creation.
        tenant_field: Metadata key that partitions the collection by tenant (a keyword index
            marked as the tenant field is created with the collection, or when this opens one
            without it).
        tenant: Scope every search, count, delete and ingest to this value of
            ``tenant_field``; BM25's IDF and average document length (and IDF-weighted
            sparse statistics) are computed over its documents only (``None``: the whole
            collection).
        multivector: Store the dense encoder's late-interaction (ColBERT) token vectors in a
            ``colbert`` multivector of the collection at ingest (``None``: what an existing
            collection was built with, else the profile's, else false; with
            ``search.multivector_rescore`` set true, true). Part of the collection's
            fingerprint when on: turning it on or off for an existing collection needs a
            re-ingest.
        show_progress: Show a progress bar while ingesting.
        search: Query-time settings.
    """

    location: str = "./m3r_data"
    collection: str = "m3retriever"
    api_key: str | None = None
    shard_number: int | None = None
    replication_factor: int | None = None
    profile: str | None = None
    dense_encoder: str | None = _by_profile("none", component=True)
    dense_model: str | None = _by_profile(follows="dense_encoder")
    sparse_encoder: str | None = _by_profile("none", component=True)
    sparse_model: str | None = _by_profile(
        lambda c: c.dense_model if c.sparse_encoder == c.dense_encoder else None,
        follows="sparse_encoder",
    )
    bm25: bool | None = _by_profile(lambda c: c.lexical_encoder not in (None, "", "none"), follows="lexical_encoder")
    lexical_encoder: str | None = _by_profile("bm25", component=True)
    dense2_encoder: str | None = None
    dense2_model: str | None = None
    reranker: str | None = _by_profile("none", component=True)
    reranker_model: str | None = _by_profile(follows="reranker")
    device: str = "auto"
    batch_size: int = 32
    max_length: int = 512
    rerank_max_length: int | None = _by_profile(lambda c: c.max_length)
    query_instruction: str | None = _by_profile(follows="dense_encoder")
    max_query_tokens: int | None = None
    max_document_chars: int | None = 2_000_000
    dims: int | None = None
    distance: Literal["cosine", "dot", "euclid", "manhattan"] | None = None
    chunk_tokens: int = 512
    chunk_overlap: int = 64
    chunk_headers: Literal["off", "structured", "all"] | None = _by_profile("structured")
    indexed_fields: tuple[str, ...] = ()
    expected_chunks: int | None = None
    quantization: Literal["none", "scalar", "binary", "turbo"] | None = _by_profile(
        lambda c: auto_index_settings(c.expected_chunks)["quantization"]
    )
    vectors_on_disk: bool | None = _by_profile(lambda c: quantized(c.quantization, c.expected_chunks))
    payload_on_disk: bool | None = _by_profile(lambda c: quantized(c.quantization, c.expected_chunks))
    hnsw_m: int | None = _by_profile(16)
    hnsw_ef_construct: int | None = _by_profile(128)
    tenant_field: str | None = None
    tenant: str | None = None
    multivector: bool | None = _by_profile(False)
    show_progress: bool = False
    search: SearchConfig = field(default_factory=SearchConfig)

    def __post_init__(self) -> None:
        if self.profile is not None:
            get_profile(self.profile)  # validates the name
        check_name(self.collection)
        if self.batch_size < 1 or self.max_length < 8:
            raise ConfigError("batch_size must be >= 1 and max_length >= 8")
        if self.max_query_tokens is not None and self.max_query_tokens < 1:
            raise ConfigError(f"max_query_tokens must be >= 1, got {self.max_query_tokens}")
        if self.max_document_chars is not None and self.max_document_chars < 1:
            raise ConfigError(f"max_document_chars must be >= 1, got {self.max_document_chars}")
        check_index_values(self)
        if isinstance(self.indexed_fields, list):
            object.__setattr__(self, "indexed_fields", tuple(self.indexed_fields))
        check_tenant(self.tenant_field, self.tenant)

    @property
    def profile_obj(self) -> Profile:
        """The :class:`~m3retriever.config.profiles.Profile` named by :attr:`profile` (``bge-m3``
        when unset; the resolved configuration names the one in force)."""
        return get_profile(self.profile or DEFAULT_PROFILE)


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        if key not in known:
            raise ConfigError(
                f"unknown setting {prefix + key!r} (from the config file, an M3R_* variable or "
                f"an argument); known settings: {sorted(known)}"
            )
        f = known[key]
        factory = f.default_factory
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{prefix}{key} must be a table")
            kwargs[key] = _build(factory, raw, f"{prefix}{key}.")  # type: ignore[arg-type]
        else:
            kwargs[key] = coerce_setting(prefix + key, raw, f.type)
    return cls(**kwargs)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Build a :class:`Config` from a TOML file, then ``M3R_*`` variables, then ``overrides``.

    Later sources win. Environment variables are ``M3R_<FIELD>`` (``M3R_PROFILE=small``) and
    ``M3R_SEARCH_<FIELD>`` (``M3R_SEARCH_TOP_K=5``). ``overrides`` with value ``None`` are ignored,
    so CLI options can be passed straight through.

    Args:
        path: A TOML file with top-level settings and an optional ``[search]`` table.
        env: Environment to read (default: ``os.environ``).
        **overrides: Settings given in code; ``search`` may be a mapping or a SearchConfig.

    Raises:
        ConfigError: for unknown keys, wrong types, or an unreadable file.
    """
    values: dict[str, Any] = {}
    search: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        search.update(data.pop("search", {}) or {})
        values.update(data)
    env = os.environ if env is None else env
    search_prefix = ENV_PREFIX + "SEARCH_"
    for key, raw in env.items():
        if key.startswith(NON_CONFIG_PREFIXES):
            continue
        if key.startswith(search_prefix):
            search[key[len(search_prefix) :].lower()] = raw
        elif key.startswith(ENV_PREFIX):
            values[key[len(ENV_PREFIX) :].lower()] = raw
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "search":
            if isinstance(value, SearchConfig):
                search.update({f.name: getattr(value, f.name) for f in fields(SearchConfig)})
            else:
                search.update(value)
        else:
            values[key] = value
    if search:
        values["search"] = search
    config: Config = _build(Config, values, "")
    return config


def refuse_tenant(config: Config, command: str) -> None:
    """Refuse a tenant for a command that acts on the whole collection (every tenant's
    points): it would otherwise be silently ignored.

    Raises:
        ConfigError: ``config.tenant`` is set.
    """
    if config.tenant is not None:
        raise ConfigError(
            f"{command} acts on the whole collection {config.collection!r}, every tenant's chunks: leave "
            "--tenant (M3R_TENANT, tenant in the config file) out, or use a scoped search, ingest or delete"
        )
