"""Build tiny random models with the exact production layouts, offline, in a few seconds.

The Hugging Face hub is unreachable on our machines, so tests exercise the real loading and encoding
code (FlagEmbedding, transformers, sentence-transformers) on small random models instead of
``BAAI/bge-m3`` and ``BAAI/bge-reranker-v2-m3``. See ``/work/shared/MODELS.md``.

* :func:`build_tiny_bge_m3` writes an ``XLMRobertaModel`` (hidden 32, 2 layers, 2 heads) plus
  ``colbert_linear.pt`` and ``sparse_linear.pt``, the layout ``BGEM3FlagModel`` loads.
* :func:`build_tiny_reranker` writes an ``XLMRobertaForSequenceClassification`` with one label,
  the layout of ``bge-reranker-v2-m3`` that ``CrossEncoder`` loads.

Both share one small Unigram tokenizer wrapped as ``XLMRobertaTokenizer``. Weights come from a fixed
torch seed, so the same call always produces the same model. Random weights rank randomly: tests
assert on shapes, types, determinism and plumbing, never on retrieval quality.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

__all__ = ["build_tiny_bge_m3", "build_tiny_reranker", "TRAINING_TEXT", "HIDDEN_SIZE"]

HIDDEN_SIZE = 32
SEED = 1234
VOCAB_SIZE = 1000  # an upper bound: the built-in text supports ~760 pieces
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4, as in XLM-R
PAD_TOKEN_ID = 1

# Ordinary ASCII letters, digits and punctuation, plus common accented / latin-1 letters, so that
# ordinary text never turns into <unk>.
INITIAL_ALPHABET = sorted(
    set(string.ascii_letters + string.digits + string.punctuation)
    | set("àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝÞßœŒ€£¥§°±µ¿¡«»")
)

TRAINING_TEXT: tuple[str, ...] = (
    "The cat sat on the mat and looked out of the window at the garden.",
    "A feline was resting on a rug near the warm fireplace.",
    "Dogs are loyal animals that enjoy long walks in the park.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "Investors moved their money into bonds and gold during the crisis.",
    "Quarterly earnings beat expectations, and the shares rose by five percent.",
    "Paris is the capital of France and is famous for the Eiffel Tower.",
    "Berlin, Madrid and Rome are large European cities with long histories.",
    "The river flows through the valley before it reaches the sea.",
    "Mount Everest is the highest mountain on Earth, at 8,849 metres.",
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar.",
    "The human heart pumps blood through arteries, veins and capillaries.",
    "Vaccines train the immune system to recognise a virus before an infection.",
    "Python is a programming language used for data science and web development.",
    "The function returns a list of integers sorted in ascending order.",
    "A database index speeds up queries but slows down inserts and updates.",
    "Vector search finds the nearest neighbours of an embedding in high dimensions.",
    "Hybrid retrieval combines dense vectors with sparse lexical weights.",
    "A cross-encoder reranks the candidate passages returned by the first stage.",
    "The tokenizer splits text into subword units before the model reads it.",
    "Machine learning models learn patterns from examples instead of rules.",
    "The recipe needs two eggs, a cup of flour, sugar, butter and a pinch of salt.",
    "Bake the cake in a hot oven for thirty minutes until it is golden brown.",
    "Fresh vegetables, fruit and whole grains are part of a healthy diet.",
    "The football match ended in a draw after extra time and penalties.",
    "She won the tennis tournament for the third year in a row.",
    "The orchestra played a symphony by Beethoven in the concert hall.",
    "He reads novels, poetry and history books on the train to work.",
    "The museum opens at nine o'clock and closes at six in the evening.",
    "Rain is expected tomorrow, with strong winds along the northern coast.",
    "Climate change is raising sea levels and making summers hotter.",
    "Solar panels and wind turbines produce electricity without burning coal.",
    "The electric car charges overnight and drives four hundred kilometres.",
    "Our team released version 2.1 of the software with many bug fixes.",
    "Please send the report by Friday; the meeting is on Monday at 10:30.",
    "What is the population of Canada? About forty million people live there.",
    "How do I reset my password if I forgot the answer to the security question?",
    "The library lends books, films and music to anyone with a membership card.",
    "Children learn to read and write at primary school.",
    "The doctor said the patient should rest and drink plenty of water.",
    "Ancient Rome built roads, aqueducts and temples across its empire.",
    "The printing press spread knowledge quickly across Europe.",
    "Light travels at about 300,000 kilometres per second in a vacuum.",
    "The moon orbits the Earth roughly once every twenty-seven days.",
    "Café, naïve, résumé, façade and jalapeño are words with accents.",
    "München, Zürich, São Paulo and Kraków are cities with accented names.",
    "Email me at info@example.com or call +1 (555) 123-4567 for details.",
    "The price rose from $19.99 to €24.50, an increase of about 20%.",
    "Search engines rank documents by relevance to the user's query.",
    "Semantic similarity measures how close two sentences are in meaning.",
    "The train to Amsterdam leaves from platform four at a quarter past eight.",
    "Volcanoes erupt when molten rock, gas and ash escape from beneath the crust.",
    "The committee approved the budget, although several members voted against it.",
    "Honeybees pollinate flowers and produce honey from the nectar they collect.",
    "A thunderstorm knocked out power to thousands of homes last night.",
    "The startup raised twelve million dollars to expand into Asian markets.",
    "Our neighbour's garden is full of roses, tulips, lavender and sunflowers.",
    "Encryption protects private messages from being read by eavesdroppers.",
    "The judge adjourned the trial until witnesses could be questioned again.",
    "Glaciers carved deep fjords into the coastline of Norway over millennia.",
    "Students borrowed microscopes to examine bacteria, yeast and algae.",
    "The pilot announced turbulence and asked passengers to fasten seatbelts.",
    "Wolves hunt in packs and communicate through howling across the forest.",
    "Copyright law gives authors exclusive rights to reproduce their work.",
    "The bakery sells croissants, baguettes, muffins and chocolate éclairs.",
    "Quantum computers exploit superposition and entanglement to solve problems.",
    "Jazz musicians often improvise melodies over a familiar chord progression.",
    "The hospital hired additional nurses during the winter influenza season.",
    "Archaeologists uncovered pottery, coins and jewellery near the ancient harbour.",
    "Kubernetes schedules containers across a cluster of virtual machines.",
    "Whales migrate thousands of kilometres between feeding and breeding grounds.",
    "The novel follows a detective investigating mysterious disappearances.",
    "Inflation reduces purchasing power when wages grow more slowly than prices.",
    "Cyclists should wear helmets and use lights when riding after sunset.",
    "The referee showed a yellow card for a dangerous tackle in midfield.",
)


VOCAB_FILE = Path(__file__).resolve().parent / "data" / "tiny_unigram_vocab.json"
"""One result of :func:`_train_tokenizer_vocab`, kept: the trainer is not deterministic (the same
text gives pieces in another order with other scores on each run), and a model whose tokenizer
changes from run to run gives other vectors and rankings each time."""


def _tokenizer_vocab() -> list[tuple[str, float]]:
    """The tiny tokenizer's ``(piece, score)`` list: the kept one (:data:`VOCAB_FILE`)."""
    return [(str(piece), float(score)) for piece, score in json.loads(VOCAB_FILE.read_text(encoding="utf-8"))]


def _train_tokenizer_vocab() -> list[tuple[str, float]]:
    """Train a small Unigram model on :data:`TRAINING_TEXT` and return its ``(piece, score)`` list
    (how :data:`VOCAB_FILE` was made)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    # The same pre-tokenization as XLMRobertaTokenizer, so the pieces carry the '▁' word marker.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        unk_token="<unk>",
        initial_alphabet=INITIAL_ALPHABET,
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer=trainer)
    vocab = json.loads(tokenizer.to_str())["model"]["vocab"]
    pieces = [(str(piece), float(score)) for piece, score in vocab]
    if [p for p, _ in pieces[: len(SPECIAL_TOKENS)]] != SPECIAL_TOKENS:
        raise RuntimeError(f"unexpected special tokens at ids 0-4: {pieces[:5]}")
    return pieces


def _save_tokenizer(path: Path) -> int:
    """Save an ``XLMRobertaTokenizer`` in ``path`` and return its vocabulary size."""
    from transformers import XLMRobertaTokenizer

    tokenizer = XLMRobertaTokenizer(vocab=_tokenizer_vocab(), model_max_length=512)
    if tokenizer.pad_token_id != PAD_TOKEN_ID or tokenizer.unk_token_id != 3:
        raise RuntimeError("tiny tokenizer special ids differ from XLM-R's")
    tokenizer.save_pretrained(str(path))
    return len(tokenizer)


def _config(vocab_size: int, **extra: object):  # type: ignore[no-untyped-def]
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=PAD_TOKEN_ID,
        bos_token_id=0,
        eos_token_id=2,
        initializer_range=0.5,  # the default 0.02 makes every vector nearly identical
        **extra,
    )


def build_tiny_bge_m3(path: str | Path) -> Path:
    """Write a tiny random model with the BGE-M3 layout to ``path``.

    The directory holds ``config.json``, the weights, the tokenizer files, ``colbert_linear.pt``
    (``Linear(32, 32)``) and ``sparse_linear.pt`` (``Linear(32, 1)``), which is what
    ``FlagEmbedding.BGEM3FlagModel`` loads. Deterministic: same seed, same weights.

    Args:
        path: Directory to create (parents included).

    Returns:
        The absolute path of the directory.
    """
    import torch
    from transformers import XLMRobertaModel

    out = Path(path).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = _save_tokenizer(out)
    torch.manual_seed(SEED)
    model = XLMRobertaModel(_config(vocab_size, architectures=["XLMRobertaModel"]), add_pooling_layer=True)
    model.eval()
    model.save_pretrained(str(out))
    torch.save(torch.nn.Linear(HIDDEN_SIZE, HIDDEN_SIZE).state_dict(), out / "colbert_linear.pt")
    torch.save(torch.nn.Linear(HIDDEN_SIZE, 1).state_dict(), out / "sparse_linear.pt")
    return out


def build_tiny_reranker(path: str | Path) -> Path:
    """Write a tiny random cross-encoder with the bge-reranker layout to ``path``.

    An ``XLMRobertaForSequenceClassification`` with ``num_labels=1`` and the same tokenizer as
    :func:`build_tiny_bge_m3`. Deterministic: same seed, same weights.

    Args:
        path: Directory to create (parents included).

    Returns:
        The absolute path of the directory.
    """
    import torch
    from transformers import XLMRobertaForSequenceClassification

    out = Path(path).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = _save_tokenizer(out)
    torch.manual_seed(SEED + 1)
    config = _config(
        vocab_size,
        num_labels=1,
        architectures=["XLMRobertaForSequenceClassification"],
        id2label={0: "LABEL_0"},
        label2id={"LABEL_0": 0},
    )
    model = XLMRobertaForSequenceClassification(config)
    model.eval()
    model.save_pretrained(str(out))
    return out
