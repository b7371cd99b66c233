"""``m3retriever finetune`` and ``m3retriever add-branch`` sub-commands.

Only argparse wiring lives here; the work (torch, sentence-transformers) is imported when a
command runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from m3retriever.display import out as _out

__all__ = ["add_commands"]


def add_commands(
    sub: Any,
    common: Callable[[argparse.ArgumentParser], None],
    config_fn: Callable[..., Any],
) -> None:
    """Add ``finetune`` and ``add-branch`` to the CLI's sub-parsers.

    Args:
        sub: The ``add_subparsers()`` object of the main parser.
        common: Adds --config/--location/--collection/--profile/--device to a parser.
        config_fn: ``config_fn(args, **overrides)`` returns a :class:`~m3retriever.Config`.
    """
    p = sub.add_parser(
        "finetune",
        help="fine-tune a dense model on labelled pairs, hard negatives mined from the collection",
        description=(
            "Train a sentence-transformers model with MultipleNegativesRankingLoss on (query, "
            "relevant document) pairs of an ingested collection, the retriever's own fused "
            "candidates as hard negatives; writes the model and m3retriever-finetune.json."
        ),
    )
    common(p)
    p.add_argument("pairs", nargs="?", help="BEIR dataset directory (see --split) or a JSONL of labelled queries")
    p.add_argument("--out", required=True, help="folder for the fine-tuned model (must not exist)")
    p.add_argument("--split", default="train", help="BEIR qrels split to train on (default: train)")
    p.add_argument("--generate", metavar="NAME", help="make pairs with a registered query generator instead")
    p.add_argument("--base-model", help="sentence-transformers model to start from (default: all-MiniLM-L6-v2)")
    p.add_argument("--loss", choices=["mnrl", "cached-mnrl"], default=None)
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-length", type=int, default=None)
    p.add_argument("--negatives", type=int, default=None, help="hard negatives per example")
    p.add_argument("--heldout", type=float, default=None, help="fraction of queries held back for the manifest")
    p.add_argument("--heldout-pool", type=int, default=None, help="measure held-back queries on their fused top N (0: every chunk)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    p.set_defaults(func=lambda args: _cmd_finetune(args, config_fn))

    b = sub.add_parser(
        "add-branch",
        help="add (or replace) the extra dense branch dense2, encoding only that branch",
        description=(
            "Encode the stored chunk texts with --dense2-model and add them as the collection's "
            "dense2 vector; every other vector and payload is copied unchanged."
        ),
    )
    common(b)
    b.add_argument("--dense2-model", help="model of the branch (a folder written by finetune)")
    b.add_argument("--dense2-encoder", default=None, help="its encoder (default: sentence-transformers)")
    b.set_defaults(func=lambda args: _cmd_add_branch(args, config_fn))


def _cmd_finetune(args: argparse.Namespace, config_fn: Callable[..., Any]) -> int:
    from m3retriever.errors import InputError
    from m3retriever.finetune.run import finetune
    from m3retriever.finetune.trainer import Recipe
    from m3retriever.retriever import Retriever

    if (args.pairs is None) == (args.generate is None):
        raise InputError("pass labelled pairs (a BEIR folder or JSONL) or --generate NAME, not both or neither")
    names = ("loss", "epochs", "batch_size", "lr", "max_length", "negatives", "heldout", "heldout_pool", "seed")
    recipe = Recipe(**{n: getattr(args, n) for n in names if getattr(args, n) is not None})
    with Retriever(config_fn(args)) as r:
        report = finetune(
            r, args.out, pairs=args.pairs, split=args.split, generate=args.generate,
            base_model=args.base_model, recipe=recipe, overwrite=args.overwrite,
        )
    m = report.manifest
    _out(json.dumps({"heldout": m["heldout"], "training": m["training"], "seconds": m["seconds"]}, indent=2))
    _out(f"wrote {report.path}")
    return 0


def _cmd_add_branch(args: argparse.Namespace, config_fn: Callable[..., Any]) -> int:
    from m3retriever.finetune.branch import add_dense2_branch

    overrides = {"dense2_encoder": args.dense2_encoder or ("sentence-transformers" if args.dense2_model else None)}
    if args.dense2_model:
        overrides["dense2_model"] = args.dense2_model
    config = config_fn(args, **{k: v for k, v in overrides.items() if v is not None})
    report = add_dense2_branch(config)
    _out(f"{config.collection}: dense2 added ({report.encoded} chunks encoded, {report.copied} copied) in {report.seconds:.1f}s")
    return 0
