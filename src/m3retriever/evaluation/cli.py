"""``m3retriever eval`` and ``m3retriever tune`` sub-commands.

Only argparse wiring lives here; the work is imported when a command runs, so
``m3retriever --help`` stays fast.
"""

from __future__ import annotations

import argparse

from m3retriever.cli.registry import CommandLine, command_config
from m3retriever.display import out as _out
from m3retriever.errors import ConfigError

__all__ = ["register_commands"]


def _stages_arg(raw: str | None) -> tuple[str, ...] | None:
    if not raw:
        return None
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def register_commands(cli: CommandLine) -> None:
    """Declare ``eval`` and ``tune``."""
    options = ("store", "model", "tenant", "index")  # index: the collection a BEIR corpus is ingested into
    cli.command(
        "eval",
        _cmd_eval,
        help="per-stage quality (nDCG@10, Recall@100, MRR@10) on a BEIR dataset or labelled JSONL",
        description=(
            "Ingest a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or use an "
            "already-ingested collection with a JSONL of {\"query\": ..., \"relevant\": [doc ids]}, "
            "then score every stage (dense, sparse, bm25, fused, rerank) from one ingest."
        ),
        options=options,
        arguments=_eval_arguments,
    )
    cli.command(
        "tune",
        _cmd_tune,
        help="sweep RRF k, branch weights, prefetch/rerank depth and rerank_weight on labelled data",
        description=(
            "Tune search settings on a labelled set (use a TRAIN split, never the test split) "
            "and report quality against latency."
        ),
        options=options,
        arguments=_tune_arguments,
    )


def _protocol_args(p: argparse.ArgumentParser) -> None:
    """``--keep-self-matches`` and ``--quiet``, shared by ``eval`` and ``tune``."""
    p.add_argument(
        "--keep-self-matches",
        action="store_true",
        help="score a retrieved document whose id equals the query id (default: drop it, as BEIR and MTEB do)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars on stderr")


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    """``eval``'s own arguments."""
    p.add_argument("dataset", help="BEIR dataset directory, or a JSONL of labelled queries")
    p.add_argument("--split", default="test", help="qrels split (default: test)")
    p.add_argument("--baseline", default="fused", help="stage the others are tested against")
    p.add_argument("--stages", help="comma-separated stages (default: all present)")
    p.add_argument("--out", help="directory for results.json, results.md and results.png")
    p.add_argument("--max-queries", type=int, default=None, help="evaluate the first N queries")
    p.add_argument("--depth", type=int, default=100, help="candidates per stage (default 100)")
    p.add_argument("--test", default="student", choices=["student", "fisher"], help="significance test")
    p.add_argument("--no-ingest", action="store_true", help="do not ingest the BEIR corpus")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    _protocol_args(p)


def _tune_arguments(p: argparse.ArgumentParser) -> None:
    """``tune``'s own arguments."""
    p.add_argument("dataset", nargs="?", help="BEIR dataset directory, or a JSONL of labelled queries")
    p.add_argument("--split", default="train", help="qrels split (default: train)")
    p.add_argument("--metric", default="ndcg@10", help="metric to maximise (default ndcg@10)")
    p.add_argument("--out", help="directory for tune.json and tune.md")
    p.add_argument("--max-queries", type=int, default=None)
    p.add_argument("--rrf-k", default="5,10,30,60,100", help="comma-separated RRF k values")
    p.add_argument(
        "--weights",
        default="auto",
        help="branch weight triples dense:sparse:bm25 separated by commas, or 'auto'",
    )
    p.add_argument("--prefetch", default="50,100", help="comma-separated prefetch limits")
    p.add_argument("--rerank-depth", default="10,20,50", help="comma-separated rerank depths")
    p.add_argument(
        "--rerank-weight", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", help="rerank weights"
    )
    p.add_argument(
        "--rerank-top",
        type=int,
        default=5,
        help="try rerank depths/weights on the N best fusion settings only (0: on all of them)",
    )
    p.add_argument("--no-ingest", action="store_true", help="do not ingest the BEIR corpus")
    p.add_argument(
        "--save",
        action="store_true",
        help="save the best setting with the collection: every later search of it uses it",
    )
    p.add_argument(
        "--clear",
        action="store_true",
        help="only remove the collection's saved search defaults (no dataset needed, no sweep)",
    )
    _protocol_args(p)


def _cmd_eval(args: argparse.Namespace) -> int:
    from m3retriever.evaluation.runner import evaluate, ingest_corpus
    from m3retriever.labelled.data import load_dataset
    from m3retriever.retriever import Retriever

    data = load_dataset(args.dataset, split=args.split, max_queries=args.max_queries)
    with Retriever(command_config(args)) as r:
        if data.corpus_path is not None and not args.no_ingest:
            ingest_corpus(r, data)
        report = evaluate(
            r,
            data.queries,
            data.qrels,
            stages=_stages_arg(args.stages),
            baseline=args.baseline,
            depth=args.depth,
            test=args.test,
            dataset=data.name,
            keep_self_matches=args.keep_self_matches,
            progress=not args.quiet,
        )
    if args.out:
        paths = report.write(args.out)
        _out(report.table())
        _out("")
        _out("wrote " + ", ".join(str(p) for p in paths))
    elif args.json:
        import json

        _out(json.dumps(report.as_dict(), indent=2))
    else:
        _out(report.table())
    return 0


def _floats(raw: str) -> list[float]:
    return [float(x) for x in raw.split(",") if x.strip()]


def _ints(raw: str) -> list[int]:
    return [int(x) for x in raw.split(",") if x.strip()]


def _cmd_tune(args: argparse.Namespace) -> int:
    from m3retriever.evaluation.runner import ingest_corpus
    from m3retriever.evaluation.tune import tune
    from m3retriever.labelled.data import load_dataset
    from m3retriever.retriever import Retriever

    if args.clear:
        with Retriever(command_config(args)) as r:
            r.clear_search_defaults()
        _out(f"cleared the saved search defaults of collection {r.collection!r}")
        return 0
    if args.dataset is None:
        raise ConfigError("tune needs a dataset (a BEIR folder or a JSONL of labelled queries), or --clear")
    weights = None
    if args.weights != "auto":
        weights = [tuple(float(w) for w in t.split(":")) for t in args.weights.split(",")]
    data = load_dataset(args.dataset, split=args.split, max_queries=args.max_queries)
    with Retriever(command_config(args)) as r:
        if data.corpus_path is not None and not args.no_ingest:
            ingest_corpus(r, data)
        result = tune(
            r,
            data.queries,
            data.qrels,
            metric=args.metric,
            rrf_ks=_ints(args.rrf_k),
            weights=weights,
            prefetch_limits=_ints(args.prefetch),
            rerank_depths=_ints(args.rerank_depth),
            rerank_weights=_floats(args.rerank_weight),
            rerank_top_settings=args.rerank_top or None,
            keep_self_matches=args.keep_self_matches,
            progress=not args.quiet,
            save=args.save,
        )
        saved = r.search_defaults
    _out(result.table())
    if args.save:
        _out(f"saved with collection {r.collection!r}: {saved}")
    if args.out:
        paths = result.write(args.out)
        _out("wrote " + ", ".join(str(p) for p in paths))
    return 0
