"""A BM25 sparse encoder: an English analyzer plus BM25 term-frequency saturation.

Documents get the BM25-saturated term frequency of each term,
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``, where ``avg_len`` is the average
length of the collection the document is stored in (the retriever keeps running totals of the
lengths with the collection). Queries get the number of times each term occurs in them, as
Lucene, Anserini and bm25s count a query term once per occurrence. The IDF part of BM25 is left
to the engine (Qdrant's ``Modifier.IDF`` on the sparse vector), which knows the collection's
document frequencies. The dot product of a query and a document vector under that modifier is
then the usual BM25 score.

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

from m3retriever.encoders.base import EncoderOptions, EncoderSpec, LengthNormalizedEncoder
from m3retriever.errors import ConfigError
from m3retriever.runtime.texts import check_texts
from m3retriever.types import Encoding, LengthStats, SparseVector

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

COLLECTION_AVERAGE = "collection"
"""The ``avg_len`` parameter recorded in the fingerprint when the collection's average is used."""

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


class BM25Encoder(LengthNormalizedEncoder):
    """English BM25 sparse encoder (no model download; pure Python + PyStemmer).

    Args:
        options: Encoder options. ``options.model`` must be ``None`` or ``"bm25-en-snowball"``;
            ``options.dims`` must be unset. ``options.max_length`` (in words) is recorded in the
            spec for the chunker; texts are never truncated.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalization.
        avg_len: ``None`` (the default): documents are normalised by the average length of
            their collection (:meth:`encode_document_normalized`, which the retriever calls
            with the collection's running totals), and :meth:`encode_document` by the average
            of the texts it is given. A number fixes the average instead, for every call.

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
        avg_len: float | None = None,
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
        if avg_len is not None and avg_len <= 0:
            raise ConfigError(f"avg_len must be > 0 (or None for the collection's average), got {avg_len}")
        self.k1 = float(k1)
        self.b = float(b)
        self.avg_len = None if avg_len is None else float(avg_len)
        self._spec = EncoderSpec(
            name=self.name,
            model=BM25_MODEL,
            dense_dim=None,
            sparse_kind="bm25",
            sparse_idf=True,
            max_length=options.max_length,
            # The document vectors depend on these: a collection built otherwise (e.g. with the
            # former fixed average of 256 terms, when no parameters were recorded) is refused
            # with a FingerprintMismatchError instead of mixing two kinds of vectors.
            parameters=(
                ("k1", self.k1),
                ("b", self.b),
                ("avg_len", COLLECTION_AVERAGE if self.avg_len is None else self.avg_len),
            ),
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

    def analyze_words(self, words: Sequence[str]) -> list[str | None]:
        """The analyzer applied to words already split out of a text: each word lowercased
        and stemmed, ``None`` for a stopword (what :mod:`m3retriever.search.matching` finds
        a query's words in a chunk by).

        Args:
            words: Words (no splitting is done).

        Returns:
            One term or ``None`` per word, in order.
        """
        lowered = [w.lower() for w in words]
        kept = [w for w in lowered if w not in ENGLISH_STOPWORDS]
        stems = iter(self._stemmer().stemWords(kept) if kept else [])
        return [None if w in ENGLISH_STOPWORDS else next(stems) for w in lowered]

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
        """Encode queries: each analyzed term weighs the number of times it occurs.

        A term repeated in a query counts once per occurrence, as in Lucene, Anserini and
        bm25s; this matters for long queries (questions, arguments, pasted passages).

        Args:
            texts: Query strings.

        Returns:
            An :class:`Encoding` with one :class:`SparseVector` per query (empty for a query
            made only of stopwords or punctuation).
        """
        vectors: list[SparseVector] = []
        for text in check_texts(texts, "queries"):
            counts: dict[int, int] = {}
            surfaces: dict[int, str] = {}
            for term, surface in self.analyze_with_surface(text):
                tid = term_id(term)
                counts[tid] = counts.get(tid, 0) + 1
                surfaces.setdefault(tid, surface)
            # Queries overwrite: matched terms are then shown in the user's own words.
            self._remember(list(surfaces.items()), overwrite=True)
            vectors.append(SparseVector.from_mapping(counts))
        return Encoding(sparse=vectors)

    def _term_counts(self, text: str) -> tuple[dict[int, int], int]:
        """Term id counts of a document and its length in analyzed terms."""
        pairs = self.analyze_with_surface(text)
        counts: dict[int, int] = {}
        surfaces: dict[int, str] = {}
        for term, surface in pairs:
            tid = term_id(term)
            counts[tid] = counts.get(tid, 0) + 1
            surfaces.setdefault(tid, surface)
        self._remember(list(surfaces.items()), overwrite=False)
        return counts, len(pairs)

    def saturate(self, counts: dict[int, int], length: int, avg_len: float) -> SparseVector:
        """BM25 term-frequency saturation of one document's term counts.

        Args:
            counts: ``{term id: tf}``.
            length: The document's length in analyzed terms.
            avg_len: The collection's average length.

        Returns:
            ``{term id: tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_len))}``.
        """
        norm = self.k1 * (1.0 - self.b + self.b * length / avg_len)
        return SparseVector.from_mapping({tid: tf * (self.k1 + 1.0) / (tf + norm) for tid, tf in counts.items()})

    def document_lengths(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in analyzed terms (stopwords left out, repetitions counted)."""
        return [len(self.analyze(text)) for text in check_texts(texts, "documents")]

    def encode_document_normalized(
        self, texts: Sequence[str], collection: LengthStats, *, include_texts: bool = True
    ) -> tuple[Encoding, LengthStats]:
        """Encode documents with the collection's average length (or the fixed ``avg_len``).

        Args:
            texts: Passage strings.
            collection: Length totals of the collection the passages go to.
            include_texts: Count these texts into the average (new documents); ``False``
                when ``collection`` already holds them (re-normalising stored documents).

        Returns:
            The encoding and the length totals of ``texts``.
        """
        analyzed = [self._term_counts(text) for text in check_texts(texts, "documents")]
        own = LengthStats.of(length for _, length in analyzed)
        average = (collection + own if include_texts else collection).average
        avg_len = self.avg_len or average or 1.0
        vectors = [self.saturate(counts, length, avg_len) for counts, length in analyzed]
        return Encoding(sparse=vectors), own

    def encode_document(self, texts: Sequence[str]) -> Encoding:
        """Encode documents as a collection of their own: each passage's BM25-saturated term
        frequencies, normalised by the average length of ``texts`` (or the fixed ``avg_len``).

        ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))`` where ``len`` is the number
        of analyzed terms of the document. The retriever calls
        :meth:`encode_document_normalized` instead, with its collection's running totals.

        Args:
            texts: Passage strings.

        Returns:
            An :class:`Encoding` with one :class:`SparseVector` per passage.
        """
        return self.encode_document_normalized(texts, LengthStats())[0]

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of every word of ``text`` (stopwords included)."""
        return [m.span() for m in words(text)]

    def decode_terms(self, ids: Sequence[int]) -> list[str]:
        """Words for term ids seen by this encoder (query words preferred), else ``str(id)``."""
        with self._terms_lock:
            return [self._terms.get(int(i), str(i)) for i in ids]

