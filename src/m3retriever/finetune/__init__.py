"""Fine-tuning a dense model on a collection's labelled pairs (or generated ones), with hard
negatives mined by the retriever itself, and adding the result as an extra dense branch."""

from __future__ import annotations

from m3retriever.finetune.pairs import TrainingData, generate_pairs, load_pairs
from m3retriever.finetune.run import MANIFEST_NAME, FinetuneReport, finetune, read_manifest
from m3retriever.finetune.trainer import Recipe

__all__ = [
    "MANIFEST_NAME",
    "FinetuneReport",
    "Recipe",
    "TrainingData",
    "finetune",
    "generate_pairs",
    "load_pairs",
    "read_manifest",
]
