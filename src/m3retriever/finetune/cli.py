"""``m3retriever model finetune`` and ``m3retriever collection add-branch``.

Only argparse wiring lives here; the work (torch, sentence-transformers) is imported when a
command runs.
"""

from __future__ import annotations

import argparse
import json

from m3retriever.cli.registry import CommandLine, command_config
from m3retriever.display import out as _out

__all__ = ["register_commands"]


def register_commands(cli: CommandLine) -> None:
    """Declare ``model finetune`` and ``collection add-branch``."""
    cli.command(
        "model finetune",
        _cmd_finetune,
        help="fine-tune a dense model on labelled pairs, hard negatives mined from the collection",
        description=(
            "Train a sentence-transformers model with MultipleNegativesRankingLoss on (query, "
            "relevant document) pairs of an ingested collection, the retriever's own fused "
            "candidates as hard negatives; writes the model and m3retriever-finetune.json."
        ),
        options=("store", "model"),
        arguments=_finetune_arguments,
    )
    cli.command(
        "collection add-branch",
        _cmd_add_branch,
        help="add (or replace) the extra dense branch dense2, encoding only that branch",
        description=(
            "Encode the stored chunk texts with --dense2-model and add them as the collection's "
            "dense2 vector; every other vector and payload is copied unchanged."
        ),
        options=("store", "model"),
        arguments=_add_branch_arguments,
    )


def _finetune_arguments(p: argparse.ArgumentParser) -> None:
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


def _add_branch_arguments(b: argparse.ArgumentParser) -> None:
    b.add_argument("--dense2-model", help="model of the branch (a folder written by finetune)")
    b.add_argument("--dense2-encoder", default=None, help="its encoder (default: sentence-transformers)")


def _cmd_finetune(args: argparse.Namespace) -> int:
    from m3retriever.errors import InputError
    from m3retriever.finetune.run import finetune
    from m3retriever.finetune.trainer import Recipe
    from m3retriever.retriever import Retriever

    if (args.pairs is None) == (args.generate is None):
        raise InputError("pass labelled pairs (a BEIR folder or JSONL) or --generate NAME, not both or neither")
    names = ("loss", "epochs", "batch_size", "lr", "max_length", "negatives", "heldout", "heldout_pool", "seed")
    recipe = Recipe(**{n: getattr(args, n) for n in names if getattr(args, n) is not None})
    with Retriever(command_config(args)) as r:
        report = finetune(
            r, args.out, pairs=args.pairs, split=args.split, generate=args.generate,
            base_model=args.base_model, recipe=recipe, overwrite=args.overwrite,
        )
    m = report.manifest
    _out(json.dumps({"heldout": m["heldout"], "training": m["training"], "seconds": m["seconds"]}, indent=2))
    _out(f"wrote {report.path}")
    return 0


def _cmd_add_branch(args: argparse.Namespace) -> int:
    from m3retriever.config import refuse_tenant
    from m3retriever.maintenance.add_branch import add_dense2_branch
    from m3retriever.opening import open_collection

    overrides = {"dense2_encoder": args.dense2_encoder or ("sentence-transformers" if args.dense2_model else None)}
    if args.dense2_model:
        overrides["dense2_model"] = args.dense2_model
    config = command_config(args, **{k: v for k, v in overrides.items() if v is not None})
    refuse_tenant(config, "add-branch")  # before anything is opened
    with open_collection(config, must_exist=True) as collection:
        report = add_dense2_branch(collection)
    _out(f"{config.collection}: dense2 added ({report.encoded} chunks encoded, {report.copied} copied) in {report.seconds:.1f}s")
    return 0
