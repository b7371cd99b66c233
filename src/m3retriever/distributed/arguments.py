"""The ``--ray`` options of ``m3retriever ingest`` and the ingest of one path with them (Ray
itself is imported only when such an ingest runs)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from m3retriever.errors import InputError
from m3retriever.ingest.run import IngestReport

if TYPE_CHECKING:
    from m3retriever.retriever import Retriever

__all__ = ["add_ray_arguments", "check_ray_arguments", "ingest_path_with_ray"]


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--ray [ADDRESS]``, ``--ray-actors`` and ``--ray-gpus`` to an ingest parser."""
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="encode on a Ray cluster (pip install 'm3retriever[ray]'): ADDRESS ('auto', 'ray://HOST:10001'), "
        "or none: the cluster RAY_ADDRESS names, else a local one; the collection is the one a plain ingest builds",
    )
    p.add_argument(
        "--ray-actors",
        type=int,
        metavar="N",
        help="with --ray: encoding actors, each loading the encoders once (default: one per GPU of the "
        "cluster, else one per 4 CPUs)",
    )
    p.add_argument(
        "--ray-gpus",
        type=float,
        metavar="G",
        help="with --ray: GPUs per actor (default: 1 when the cluster has GPUs, else 0; 0.5 puts two actors on a GPU)",
    )


def check_ray_arguments(args: argparse.Namespace) -> None:
    """Refuse what ``--ray`` does not do, and ``--ray-*`` without it.

    Raises:
        InputError: naming the option and the fix.
    """
    if args.ray is None:
        if args.ray_actors is not None or args.ray_gpus is not None:
            raise InputError("--ray-actors and --ray-gpus apply to an ingest with --ray; add --ray")
        return
    for flag, given in (
        ("--include", args.include),
        ("--exclude", args.exclude),
        ("--sync", args.sync),
        ("--strict", args.strict),
    ):
        if given:
            raise InputError(f"{flag} is not available with --ray; ingest without --ray, or leave out {flag}")


def ingest_path_with_ray(retriever: Retriever, path: str, args: argparse.Namespace) -> IngestReport:
    """Ingest ``path`` as ``--ray`` and its options ask."""
    from m3retriever.distributed import RayOptions, ray_ingest

    options = RayOptions(address=args.ray or None, actors=args.ray_actors, gpus=args.ray_gpus)
    return ray_ingest(retriever, path, options, show_progress=not args.quiet)
