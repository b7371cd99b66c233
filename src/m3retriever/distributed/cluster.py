"""Joining a Ray cluster and sizing the encoding actors from its resources."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from m3retriever._deps import require
from m3retriever.errors import ConfigError

__all__ = ["RayOptions", "ActorPlan", "ray_module", "connect", "plan_actors"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """How a Ray ingest runs.

    Attributes:
        address: The cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            ``None``: the one ``RAY_ADDRESS`` names, else a local cluster started for the run
            (or the one this process already joined).
        actors: Encoding actors (``None``: one per GPU of the cluster, else one per 4 CPUs,
            at least one).
        gpus: GPUs per actor (``None``: 1 when the cluster has GPUs, else 0).
        cpus: CPUs per actor (``None``: 1 with GPUs, else the cluster's CPUs shared out).
        group_docs: Documents per encoding call (what a killed actor's call loses at most).
        in_flight: Groups encoding or waiting to be written at once, per actor (bounds the
            memory the driver holds for an embedded store).
        upsert_batch: Points per upsert request when actors write to a server.
    """

    address: str | None = None
    actors: int | None = None
    gpus: float | None = None
    cpus: float | None = None
    group_docs: int = 64
    in_flight: int = 2
    upsert_batch: int = 256

    def __post_init__(self) -> None:
        for name in ("actors", "group_docs", "in_flight", "upsert_batch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"Ray ingest: {name} must be a whole number of at least 1, got {value!r}")
        for name in ("gpus", "cpus"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
                raise ConfigError(f"Ray ingest: {name} must be a number of at least 0, got {value!r}")


@dataclass(frozen=True)
class ActorPlan:
    """The actors of one ingest: how many, and the CPUs and GPUs each one asks Ray for."""

    actors: int
    cpus: float
    gpus: float


def ray_module() -> Any:
    """The ``ray`` package, or :class:`~m3retriever.errors.MissingDependencyError` naming the
    ``ray`` extra."""
    return require("ray", package="ray[data]", extra="ray", purpose="ingesting with Ray (--ray)")


def connect(address: str | None) -> Any:
    """Join the cluster at ``address`` (see :class:`RayOptions`) unless this process already
    has; returns the ``ray`` module."""
    ray = ray_module()
    if not ray.is_initialized():
        logger.info("joining the Ray cluster at %s", address or "RAY_ADDRESS, else a new local one")
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return ray


def plan_actors(options: RayOptions, resources: Mapping[str, float]) -> ActorPlan:
    """The actors for ``options`` on a cluster with ``resources`` (``ray.cluster_resources()``).

    Raises:
        ConfigError: the actors ask for more GPUs or CPUs than the cluster has.
    """
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    per_gpu = options.gpus if options.gpus is not None else (1.0 if gpus >= 1 else 0.0)
    if options.actors is not None:
        actors = options.actors
    elif per_gpu > 0:
        actors = max(1, int(gpus // per_gpu))
    else:
        actors = max(1, int(cpus // 4))
    per_cpu = (
        options.cpus if options.cpus is not None else (1.0 if per_gpu > 0 else max(1.0, float(int(cpus // actors))))
    )
    if per_gpu * actors > gpus:
        raise ConfigError(
            f"Ray ingest: {actors} actors with {per_gpu:g} GPUs each need {per_gpu * actors:g} GPUs, but the "
            f"cluster has {gpus:g}; lower --ray-actors or --ray-gpus (0: encode on CPUs)"
        )
    if per_cpu * actors > cpus:
        raise ConfigError(
            f"Ray ingest: {actors} actors with {per_cpu:g} CPUs each need {per_cpu * actors:g} CPUs, but the "
            f"cluster has {cpus:g}; lower --ray-actors"
        )
    return ActorPlan(actors, per_cpu, per_gpu)
