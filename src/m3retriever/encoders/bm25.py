"""A BM25 sparse encoder: an English analyzer plus BM25 term-frequency saturation.

Documents get the BM25-saturated term frequency of each term; queries get ``1.0`` per unique
term. The IDF part of BM25 is left to the engine (Qdrant's ``Modifier.IDF`` on the sparse
vector), which knows the collection's document frequencies. The dot product of a query and a
document vector under that modifier is then the usual BM25 score.

The analyzer is the classic Lucene ``EnglishAnalyzer`` chain with Snowball stemming:
Unicode-aware split on non-alphanumerics, lowercasing, the Lucene English stopword list,
Snowball English (Porter2) stemming via PyStemmer. Term ids are a stable 31-bit BLAKE2b hash
of the stemmed term, identical across processes, machines and Python versions.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import Any, Iterator, Sequence

from m3retriever.encoders.base import Encoder, EncoderOptions, EncoderSpec
from m3retriever.errors import ConfigError
from m3retriever.runtime.texts import check_texts
from m3retriever.types import Encoding, SparseVector

__all__ = [
    "BM25Encoder",
    "ENGLISH_STOPWORDS",
    "BM25_MODEL",
    "term_id",
    "words",
]

logger = logging.getLogger(__name__)

BM25_MODEL = "bm25-en-snowball"
"""The ``model`` recorded in the spec (the analyzer's identity)."""

ENGLISH_STOPWORDS: frozenset[str] = frozenset(
    # Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET (also Elasticsearch's ``_english_``).
    """a an and are as at be but by for if in into is it no not of on or such that the their
    then there these they this to was will with""".split()
)
"""English stopwords: the Lucene / Elasticsearch default list (33 words)."""

_WORD_RE = re.compile(r"[^\W_]+")
"""A run of Unicode letters or digits (``\\w`` without the underscore)."""

_ID_MASK = 0x7FFFFFFF
_MAX_REMEMBERED_TERMS = 2_000_000


def words(text: str) -> Iterator[re.Match[str]]:
    """Iterate over the alphanumeric runs of ``text`` (Unicode-aware)."""
    return _WORD_RE.finditer(text)


def term_id(term: str) -> int:
    """Stable 31-bit id of an analyzed term.

    The first 8 bytes of ``blake2b(term.encode("utf-8"), digest_size=8)`` read as a
    little-endian integer, masked to 31 bits (fits any signed or unsigned 32-bit index).

    Args:
        term: An analyzed (lowercased, stemmed) term.

    Returns:
        An integer in ``[0, 2**31)``.
    """
    digest = hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _ID_MASK


class BM25Encoder(Encoder):
    """English BM25 sparse encoder (no model download; pure Python + PyStemmer).

    Args:
        options: Encoder options. ``options.model`` must be ``None`` or ``"bm25-en-snowball"``;
            ``options.dims`` must be unset. ``options.max_length`` (in words) is recorded in the
            spec for the chunker; texts are never truncated.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalization.
        avg_len: Average document length in analyzed terms, a constant of the encoder: the
            document vectors are computed without corpus statistics so they can be indexed
            one at a time. 256 suits chunks of a few hundred tokens.

    Raises:
        ConfigError: An option is invalid.
    """

    name = "bm25"

    def __init__(
        self,
        options: EncoderOptions | None = None,
        *,
        k1: float = 1.2,
        b: float = 0.75,
        avg_len: float = 256.0,
    ) -> None:
        options = options or EncoderOptions()
        if options.model not in (None, BM25_MODEL):
            raise ConfigError(
                f"The bm25 encoder has a fixed analyzer ({BM25_MODEL!r}); got model={options.model!r}."
            )
        if options.dims is not None:
            raise ConfigError("The bm25 encoder is sparse only; leave dims unset.")
        if k1 < 0:
            raise ConfigError(f"k1 must be >= 0, got {k1}")
        if not 0.0 <= b <= 1.0:
            raise ConfigError(f"b must be in [0, 1], got {b}")
        if avg_len <= 0:
            raise ConfigError(f"avg_len must be > 0, got {avg_len}")
        self.k1 = float(k1)
        self.b = float(b)
        self.avg_len = float(avg_len)
        self._spec = EncoderSpec(
            name=self.name,
            model=BM25_MODEL,
            dense_dim=None,
            sparse_kind="bm25",
            sparse_idf=True,
            max_length=options.max_length,
        )
        self._local = threading.local()
        self._terms: dict[int, str] = {}
        self._terms_lock = threading.Lock()

    @property
    def spec(self) -> EncoderSpec:
        """Sparse only, ``sparse_kind="bm25"``, IDF applied by the engine."""
        return self._spec

    # -- analyzer -----------------------------------------------------------------------------

    def _stemmer(self) -> Any:
        """A per-thread Snowball stemmer (PyStemmer objects are not thread-safe)."""
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            import Stemmer  # PyStemmer, a core dependency

            stemmer = Stemmer.Stemmer("english")
            self._local.stemmer = stemmer
        return stemmer

    def analyze_with_surface(self, text: str) -> list[tuple[str, str]]:
        """Analyze ``text`` into ``(term, surface word)`` pairs, in order.

        Args:
            text: Any string.

        Returns:
            One pair per kept word: the stemmed term and the lowercased word it came from.
        """
        lowered = [m.group(0).lower() for m in words(text)]
        kept = [w for w in lowered if w not in ENGLISH_STOPWORDS]
        if not kept:
            return []
        stems = self._stemmer().stemWords(kept)
        return list(zip(stems, kept))

    def analyze(self, text: str) -> list[str]:
        """Lowercase, split on non-alphanumerics, drop stopwords, stem.

        Args:
            text: Any string.

        Returns:
            The analyzed terms in order (with repetitions).
        """
        return [term for term, _ in self.analyze_with_surface(text)]

    def _remember(self, pairs: Sequence[tuple[int, str]], overwrite: bool) -> None:
        with self._terms_lock:
            for tid, surface in pairs:
                if overwrite:
                    self._terms[tid] = surface
                elif tid not in self._terms and len(self._terms) < _MAX_REMEMBERED_TERMS:
                    self._terms[tid] = surface

    # -- Encoder API --------------------------------------------------------------------------

    def encode_query(self, texts: Sequence[str]) -> Encoding:
        """Encode queries: weight 1.0 per unique analyzed term.

        Args:
            texts: Query strings.

        Returns:
            An :class:`Encoding` with one :class:`SparseVector` per query (empty for a query
            made only of stopwords or punctuation).
        """
        vectors: list[SparseVector] = []
        for text in check_texts(texts, "queries"):
            ids: dict[int, str] = {}
            for term, surface in self.analyze_with_surface(text):
                ids.setdefault(term_id(term), surface)
            # Queries overwrite: matched terms are then shown in the user's own words.
            self._remember(list(ids.items()), overwrite=True)
            vectors.append(SparseVector.from_mapping({i: 1.0 for i in ids}))
        return Encoding(sparse=vectors)

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode documents: the BM25-saturated term frequency of each term.

        ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))`` where ``len`` is the number
        of analyzed terms of the document.

        Args:
            texts: Passage strings.

        Returns:
            An :class:`Encoding` with one :class:`SparseVector` per passage.
        """
        vectors: list[SparseVector] = []
        for text in check_texts(texts, "documents"):
            pairs = self.analyze_with_surface(text)
            counts: dict[int, int] = {}
            surfaces: dict[int, str] = {}
            for term, surface in pairs:
                tid = term_id(term)
                counts[tid] = counts.get(tid, 0) + 1
                surfaces.setdefault(tid, surface)
            self._remember(list(surfaces.items()), overwrite=False)
            norm = self.k1 * (1.0 - self.b + self.b * len(pairs) / self.avg_len)
            weights = {tid: tf * (self.k1 + 1.0) / (tf + norm) for tid, tf in counts.items()}
            vectors.append(SparseVector.from_mapping(weights))
        return Encoding(sparse=vectors)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of every word of ``text`` (stopwords included)."""
        return [m.span() for m in words(text)]

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """Words for term ids seen by this encoder (query words preferred), else ``str(id)``."""
        with self._terms_lock:
            return [self._terms.get(int(i), str(i)) for i in ids]

