"""Maintenance operations run on a configuration: open its collection, run, close (as the
commands do), for tests that hold a configuration rather than an opened collection."""

from __future__ import annotations

from typing import Any

from m3retriever import Config, open_collection
from m3retriever.maintenance.add_branch import BranchReport, add_dense2_branch
from m3retriever.maintenance.renormalize import RenormalizeReport, renormalize


def renormalize_config(config: Config, **options: Any) -> RenormalizeReport:
    with open_collection(config) as collection:
        return renormalize(collection, **options)


def add_branch_config(config: Config, client: Any = None, **options: Any) -> BranchReport:
    with open_collection(config, client, must_exist=True) as collection:
        return add_dense2_branch(collection, **options)
