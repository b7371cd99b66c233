"""The package's layering (docs/architecture.md, "Module map"): every module under
src/m3retriever is parsed with ``ast`` and its imports (module level, in functions and under
``TYPE_CHECKING`` alike) are checked against the rules below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "m3retriever"

# The optional features: entered from the command line (by module name) or imported by users.
FEATURES = ("evaluation", "finetune", "export")

# What works on an opened collection, and the features and commands above it.
TOP = (*FEATURES, "labelled", "cli", "demo", "retriever", "maintenance", "opening", "collection")

# importer -> what it may not import (each a package or module of m3retriever, with its submodules).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # Sibling features share what they need through a package below both (labelled, ...).
    "evaluation": ("finetune", "export"),
    "finetune": ("evaluation", "export"),
    "export": ("evaluation", "finetune"),
    # Labelled queries and metrics sit below both features, on top of ingest's file readers.
    "labelled": (*TOP, "search", "store"),
    # The pipeline's parts do not reach up, nor sideways between ingest and search.
    "search": (*TOP, "ingest"),
    "ingest": (*TOP, "search"),
    "config": (*TOP, "components", "ingest", "search"),
    # The store knows nothing of what is stored for which purpose (config imports the store).
    "store": (*TOP, "config", "components", "ingest", "search", "tenancy", "branches"),
    # Models know nothing of collections, settings or the pipeline.
    **{
        part: (*TOP, "config", "store", "search", "ingest", "components", "branches", "tenancy")
        for part in ("encoders", "rerankers", "runtime")
    },
    # The bottom of the package imports none of it (``_deps`` only its errors).
    "types": ("",),
    "errors": ("",),
}

# (importer, imported package) -> the only modules of that package it may import.
ONLY: dict[tuple[str, str], tuple[str, ...]] = {
    # A configuration needs a collection's description and the name rule, no store backend.
    ("config", "store"): ("store.schema", "store.collection_names", "store.kept"),
    # Outside the command line, commands are declared through its registry, never its commands.
    ("", "cli"): ("cli.registry",),
}

# The core never reaches up into an optional feature: only the public API and the command line
# may import one (the features among themselves: FORBIDDEN).
MAY_IMPORT_FEATURES = ("", "plugin", "cli", *FEATURES)


def _dotted(path: Path) -> str:
    """``m3retriever.x.y`` of a file (a package by its ``__init__``)."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = SRC.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """``(line, module)`` for every m3retriever module ``source`` imports; ``from m.p import x``
    counts as ``m.p.x`` when ``x`` is a module."""
    found: list[tuple[int, str]] = []
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else base))
    mine = [(line, name) for line, name in found if name == "m3retriever" or name.startswith("m3retriever.")]
    return list(dict.fromkeys(mine))


def _under(name: str, part: str) -> bool:
    """Whether ``m3retriever.<name>`` is ``m3retriever.<part>`` or inside it (``""``: anything)."""
    return part == "" or name == part or name.startswith(part + ".")


def violations(module: str, imported: list[tuple[int, str]]) -> list[str]:
    """The rules ``module`` breaks with its imports, one line each."""
    me = module.removeprefix("m3retriever").lstrip(".")
    out = []
    for line, full in imported:
        target = full.removeprefix("m3retriever").lstrip(".")
        if target == "" or _under(target, me.split(".")[0] if me else "__init__"):
            continue  # the package root (public names) or a module of one's own part
        for importer, banned in FORBIDDEN.items():
            if me and _under(me, importer) and any(_under(target, b) for b in banned):
                out.append(f"{module}:{line} imports {full} ({importer} may not import it)")
        for (importer, part), allowed in ONLY.items():
            if (importer == "" or (me and _under(me, importer))) and _under(target, part):
                if not any(_under(target, a) for a in allowed) and not _under(me, part):
                    out.append(f"{module}:{line} imports {full} (only {', '.join(allowed)} of {part})")
        feature = next((f for f in FEATURES if _under(target, f)), None)
        if feature and not any(me == p or (p and _under(me, p)) for p in MAY_IMPORT_FEATURES):
            out.append(f"{module}:{line} imports {full} (the core never imports a feature)")
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_scan_sees_the_package() -> None:
    names = {_dotted(p) for p in MODULES}
    assert {"m3retriever", "m3retriever.labelled.data", "m3retriever.finetune.pairs"} <= names
    pairs = PACKAGE / "finetune" / "pairs.py"
    assert "m3retriever.labelled.data" in {n for _, n in imports_of(pairs.read_text(), _dotted(pairs))}


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("m3retriever.finetune.x", "from m3retriever.evaluation.runner import evaluate", "finetune may not"),
        ("m3retriever.evaluation.x", "def f():\n    import m3retriever.finetune.run", "evaluation may not"),
        ("m3retriever.evaluation.x", "from m3retriever import finetune", "evaluation may not"),
        ("m3retriever.finetune.x", "from ..evaluation import runner", "finetune may not"),
        ("m3retriever.store.x", "from m3retriever.ingest.sources import open_text", "store may not"),
        ("m3retriever.config.x", "from m3retriever.store.qdrant import QdrantStore", "only store.schema"),
        ("m3retriever.search", "from m3retriever.cli.tree import x", "only cli.registry"),
        ("m3retriever.maintenance.x", "from m3retriever.finetune import finetune", "never imports a feature"),
        ("m3retriever.types", "from m3retriever.errors import InputError", "types may not"),
    ],
)
def test_a_broken_rule_is_reported(module: str, source: str, broken: str) -> None:
    found = violations(module, imports_of(source, module))
    assert any(broken in v for v in found), found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("m3retriever.finetune.x", "from m3retriever.labelled.metrics import score"),
        ("m3retriever.evaluation.x", "from m3retriever.labelled.data import load_dataset"),
        ("m3retriever.config.x", "from m3retriever.store.schema import Store"),
        ("m3retriever.export.cli", "from m3retriever.cli.registry import CommandLine"),
        ("m3retriever.cli.tree", "from m3retriever.cli.everyday import x"),
        ("m3retriever.finetune.run", "from .pairs import load_pairs"),
    ],
)
def test_an_allowed_import_is_not_reported(module: str, source: str) -> None:
    assert violations(module, imports_of(source, module)) == []


def test_no_module_breaks_the_layering() -> None:
    found = []
    for path in MODULES:
        module = _dotted(path)
        found += violations(module, imports_of(path.read_text(), module, path.name == "__init__.py"))
    assert found == [], "\n".join(found)
