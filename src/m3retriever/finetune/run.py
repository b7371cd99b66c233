"""``finetune``: labelled pairs + hard negatives from the retriever -> a fine-tuned dense model
with a manifest.

The model folder is a normal sentence-transformers folder, usable as a collection's
``dense_model`` (with ``dense_encoder = "sentence-transformers"``) or as its extra dense branch
(``dense2_model``, see :func:`m3retriever.finetune.add_dense2_branch`). Beside the weights,
``m3retriever-finetune.json`` records the base model, the training data, the recipe and the
held-back metrics before and after.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from m3retriever.errors import InputError
from m3retriever.finetune.heldout import dense_scores, encode_chunks, heldout_pool
from m3retriever.finetune.mining import mine_examples
from m3retriever.finetune.pairs import (
    TrainingData,
    check_against,
    collection_chunks,
    generate_pairs,
    load_pairs,
    split_heldout,
)
from m3retriever.finetune.trainer import Recipe, load_model, save_model, train_model
from m3retriever.plugins import query_generator_factories
from m3retriever.runtime.wheels import WHEEL_MODELS, minilm_dir

__all__ = ["MANIFEST_NAME", "FinetuneReport", "finetune", "read_manifest"]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "m3retriever-finetune.json"


@dataclass(frozen=True)
class FinetuneReport:
    """What :func:`finetune` wrote: the model folder and its manifest's content."""

    path: Path
    manifest: Mapping[str, Any]


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a fine-tuned model folder.

    Raises:
        InputError: The folder has no manifest.
    """
    file = Path(path) / MANIFEST_NAME
    if not file.is_file():
        raise InputError(f"{path} has no {MANIFEST_NAME}: not a model written by m3retriever model finetune")
    loaded: dict[str, Any] = json.loads(file.read_text())
    return loaded


def _base(base_model: str | None) -> tuple[str, str]:
    """(what to load, what to record) for the base model."""
    if base_model is None:
        return str(minilm_dir()), WHEEL_MODELS["all-minilm-l6-v2"].model_id
    path = Path(base_model).expanduser()
    return (str(path.resolve()), str(path.resolve())) if path.is_dir() else (base_model, base_model)


def _data(retriever: Any, chunks: Any, pairs: str | Path | TrainingData | None, split: str, generate: str | None,
          generator_options: Mapping[str, Any] | None) -> TrainingData:
    if (pairs is None) == (generate is None):
        raise InputError("pass either labelled pairs or the name of a query generator (--generate NAME), not both or neither")
    if generate is not None:
        return generate_pairs(generate, query_generator_factories(), chunks, options=generator_options)
    data = pairs if isinstance(pairs, TrainingData) else load_pairs(pairs, split)  # type: ignore[arg-type]
    check_against(data, chunks, retriever.collection)
    return data


def finetune(
    retriever: Any,
    out_dir: str | Path,
    *,
    pairs: str | Path | TrainingData | None = None,
    split: str = "train",
    generate: str | None = None,
    generator_options: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    recipe: Recipe | None = None,
    overwrite: bool = False,
) -> FinetuneReport:
    """Fine-tune a dense model on labelled pairs against an ingested collection.

    Args:
        retriever: An open :class:`~m3retriever.Retriever` whose collection holds the judged
            documents (its fused candidates give the hard negatives). One scoped to a tenant
            reads that tenant's chunks only (pairs, generated queries, negatives, held-back
            corpus).
        out_dir: Folder to write the model and its manifest to (must not exist, unless
            ``overwrite``). It appears only once complete.
        pairs: A BEIR folder (``split`` picks the qrels), a labelled-queries JSONL, or
            :class:`TrainingData`.
        split: The BEIR qrels split to train on.
        generate: Instead of ``pairs``: a registered query generator's name.
        generator_options: Keyword arguments for the generator's factory.
        base_model: Sentence-transformers hub id or folder (``None``: all-MiniLM-L6-v2 from
            its wheel).
        recipe: The training recipe (``None``: :class:`Recipe` defaults).
        overwrite: Replace an existing ``out_dir``.

    Returns:
        The model folder and its manifest.

    Raises:
        InputError: The collection does not exist or is empty, the pairs are empty or name
            unknown documents, or ``out_dir`` exists.
    """
    start = time.perf_counter()
    recipe = recipe or Recipe()
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not overwrite:
        raise InputError(f"{out} already exists; pass another output folder or overwrite=True (--overwrite)")
    if not retriever.store.has_collection(retriever.collection) or retriever.count() == 0:
        raise InputError(
            f"collection {retriever.collection!r} does not exist or is empty at {retriever.config.location}; "
            "ingest the documents the pairs refer to first (m3retriever ingest)"
        )
    chunks = collection_chunks(retriever.store.scroll(retriever.collection, _scope_filter(retriever)))
    data = _data(retriever, chunks, pairs, split, generate, generator_options)
    train, held = split_heldout(data, recipe.heldout, recipe.seed)
    examples = mine_examples(retriever, train, chunks, negatives=recipe.negatives, depth=recipe.depth, skip=recipe.skip)
    load_ref, base_id = _base(base_model)
    model = load_model(load_ref, 10**6)  # its own max_seq_length
    pool = heldout_pool(retriever, held, chunks, recipe.heldout_pool)
    before = dense_scores(model, held, encode_chunks(model, pool)) if held.queries else {}
    result = train_model(model, examples, recipe)
    after = dense_scores(model, held, encode_chunks(model, pool)) if held.queries else {}
    manifest = {
        "format": 1,
        "base_model": base_id,
        "data": {
            "name": data.name,
            "split": data.split,
            "collection": retriever.collection,
            "tenant": getattr(getattr(retriever, "scope", None), "tenant", None),
            "pairs": data.n_pairs,
            "queries": len(data.queries),
            "train_queries": len(train.queries),
            "heldout_queries": len(held.queries),
            "heldout_corpus": f"{len(pool)} of {len(chunks)} documents"
            + ("" if len(pool) == len(chunks) else f" (their fused top {recipe.heldout_pool} and relevant ones)"),
            "examples": len(examples),
            "qrels_sha256": data.qrels_sha256(),
            "negatives_from": "fused candidates of the collection's retriever (no rerank), not judged relevant",
        },
        "recipe": recipe.as_dict(),
        "training": {
            "steps": result.steps,
            "first_loss": result.first_loss,
            "last_loss": result.last_loss,
            "seconds": round(result.seconds, 1),
        },
        "heldout": {"before": dict(before), "after": dict(after)},
        "seconds": round(time.perf_counter() - start, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    _write(model, out, manifest, overwrite)
    logger.info("fine-tuned model written to %s (held-back %s -> %s)", out, before, after)
    return FinetuneReport(out, manifest)


def _scope_filter(retriever: Any) -> Any:
    """The filter confining reads to the retriever's tenant (``None``: it has none): a scoped
    retriever's pairs, mined passages and held-back corpus come from its tenant's chunks only."""
    scope = getattr(retriever, "scope", None)
    return scope.filter if scope is not None else None


def _write(model: Any, out: Path, manifest: Mapping[str, Any], overwrite: bool) -> None:
    """Write into a sibling folder, then move it into place: a failure leaves no half model."""
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_model(model, partial)
    (partial / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if out.exists() and overwrite:
        shutil.rmtree(out)
    os.replace(partial, out)
