"""The public API: what ``m3retriever`` and ``m3retriever.plugin`` export, that importing the
package stays cheap, that old top-level names still resolve with a DeprecationWarning, and that
the adapters in plugins/ import nothing else of the package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

import m3retriever
import m3retriever.plugin

ROOT = Path(__file__).resolve().parent.parent

PUBLIC = [
    "And",
    "AnyOf",
    "BrokenDependencyError",
    "ChunkSpan",
    "CollectionNotFoundError",
    "Config",
    "ConfigError",
    "DamagedSnapshotError",
    "Document",
    "Eq",
    "Filter",
    "FingerprintMismatchError",
    "Hit",
    "IngestReport",
    "InputError",
    "M3RetrieverError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "Not",
    "OpenedCollection",
    "Passage",
    "PluginError",
    "Range",
    "Retriever",
    "SearchConfig",
    "SearchResult",
    "StageScores",
    "StoreError",
    "StoreInUseError",
    "StoredDocument",
    "copy_collection",
    "load_config",
    "open_collection",
    "parse_filter",
    "renormalize",
    "restore_snapshot",
    "snapshot_collection",
]

PLUGIN = [
    "AdapterFactory",
    "CONFIDENCE_KEY",
    "CommandLine",
    "Distance",
    "Encoder",
    "EncoderFactory",
    "EncoderOptions",
    "EncoderSpec",
    "Encoding",
    "INT64_MAX",
    "INT64_MIN",
    "LengthNormalizedEncoder",
    "LengthStats",
    "MATCHED_TERMS_KEY",
    "MAX_ID_CHARS",
    "MAX_METADATA_DEPTH",
    "MAX_QUERY_CHARS",
    "MAX_SOURCE_CHARS",
    "QueryGeneratorFactory",
    "ReadDocument",
    "Reader",
    "ReaderFactory",
    "Reranker",
    "RerankerFactory",
    "RerankerOptions",
    "RerankerSpec",
    "SCORES_KEY",
    "Section",
    "SparseKind",
    "SparseVector",
    "TextBuilder",
    "UnreadableFile",
    "check_doc_id",
    "check_field",
    "check_query",
    "check_source",
    "clean_metadata",
    "command_config",
    "hit_metadata",
    "hookimpl",
    "text_id",
]

# exported by m3retriever before the public API was narrowed -> where they live now
MOVED = {
    "Encoder": "m3retriever.plugin",
    "EncoderOptions": "m3retriever.plugin",
    "EncoderSpec": "m3retriever.plugin",
    "LengthNormalizedEncoder": "m3retriever.plugin",
    "Encoding": "m3retriever.plugin",
    "SparseVector": "m3retriever.plugin",
    "LengthStats": "m3retriever.plugin",
    "Distance": "m3retriever.plugin",
    "SparseKind": "m3retriever.plugin",
    "Reranker": "m3retriever.plugin",
    "RerankerOptions": "m3retriever.plugin",
    "RerankerSpec": "m3retriever.plugin",
    "EncoderFactory": "m3retriever.plugin",
    "RerankerFactory": "m3retriever.plugin",
    "AdapterFactory": "m3retriever.plugin",
    "hookimpl": "m3retriever.plugin",
    "resolve": "m3retriever.config.resolution",
    "Profile": "m3retriever.config.profiles",
    "PROFILES": "m3retriever.config.profiles",
    "Chunk": "m3retriever.types",
    "RenormalizeReport": "m3retriever.maintenance.renormalize",
    "CopyReport": "m3retriever.maintenance.copy",
    "SnapshotReport": "m3retriever.maintenance.snapshot",
}

HEAVY = ("torch", "transformers", "onnxruntime", "qdrant_edge", "qdrant_client")


def test_the_top_level_exports_exactly_the_user_api() -> None:
    assert sorted(m3retriever.__all__) == PUBLIC
    assert len(set(m3retriever.__all__)) == len(m3retriever.__all__)


def test_the_plugin_module_exports_exactly_the_plugin_api() -> None:
    assert sorted(m3retriever.plugin.__all__) == PLUGIN
    assert len(set(m3retriever.plugin.__all__)) == len(m3retriever.plugin.__all__)


def test_the_lazy_tables_match_the_exports() -> None:
    assert set(m3retriever._PUBLIC) == set(m3retriever.__all__)
    assert set(m3retriever.plugin._PUBLIC) == set(m3retriever.plugin.__all__)
    assert m3retriever._MOVED == MOVED and not set(MOVED) & set(PUBLIC)


@pytest.mark.parametrize("module", [m3retriever, m3retriever.plugin], ids=lambda m: m.__name__)
def test_every_exported_name_resolves_and_is_listed_by_dir(module: types.ModuleType) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a public name never warns
        for name in module.__all__:
            value = getattr(module, name)
            assert value is not None, name
            assert not isinstance(value, types.ModuleType), name
    listed = dir(module)
    assert set(module.__all__) <= set(listed)
    assert "_PUBLIC" not in listed and "TYPE_CHECKING" not in listed


def test_public_names_are_the_objects_their_modules_define() -> None:
    from m3retriever.errors import ConfigError
    from m3retriever.hookspecs import hookimpl
    from m3retriever.retriever import Retriever

    assert m3retriever.Retriever is Retriever
    assert m3retriever.ConfigError is ConfigError
    assert m3retriever.plugin.hookimpl is hookimpl


def test_renormalize_is_the_function_even_after_its_module_is_imported() -> None:
    import importlib

    module = importlib.import_module("m3retriever.maintenance.renormalize")
    assert callable(m3retriever.renormalize) and not isinstance(m3retriever.renormalize, types.ModuleType)
    assert m3retriever.renormalize is module.renormalize
    from m3retriever import renormalize

    assert renormalize is module.renormalize


@pytest.mark.parametrize("name", sorted(MOVED))
def test_an_old_top_level_name_resolves_with_a_deprecation_warning(name: str) -> None:
    import importlib

    where = MOVED[name]
    with pytest.warns(DeprecationWarning, match=rf"m3retriever\.{name} is deprecated.*import it from {where}"):
        value = getattr(m3retriever, name)
    assert value is getattr(importlib.import_module(where), name)
    assert name not in m3retriever.__all__ and name not in dir(m3retriever)


def test_an_unknown_name_is_an_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        m3retriever.no_such_name  # noqa: B018
    with pytest.raises(ImportError):
        from m3retriever import no_such_name  # noqa: F401
    from m3retriever import plugins

    assert isinstance(plugins, types.ModuleType) and plugins.__name__ == "m3retriever.plugins"


def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    loaded: list[str] = json.loads(out.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("code", ["import m3retriever", "import m3retriever.plugin"])
def test_importing_the_package_loads_no_model_runtime_or_store_client(code: str) -> None:
    loaded = _modules_after(code)
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert heavy == []
    # nothing of the package beyond the two public modules and their lazy-export helper (the
    # standard library only): the rest loads on first use
    assert {m for m in loaded if m.startswith("m3retriever.")} <= {"m3retriever._lazy", "m3retriever.plugin"}


def test_the_first_use_of_a_name_loads_its_module() -> None:
    loaded = _modules_after("import m3retriever\nm3retriever.Config")
    assert "m3retriever.config" in loaded and "m3retriever.retriever" not in loaded


def _package_imports(path: Path) -> list[str]:
    """Every ``m3retriever`` module the file imports (``import m3retriever.x``, ``from ... import``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [n for n in names if n == "m3retriever" or n.startswith("m3retriever.")]
    return found


ADAPTER_SOURCES = sorted((ROOT / "plugins").glob("*/src/**/*.py"))


def test_the_adapters_import_only_the_public_modules() -> None:
    assert len({p.parts[len(ROOT.parts) + 1] for p in ADAPTER_SOURCES}) >= 3  # the three adapters
    internal = {
        f"{p.relative_to(ROOT)}: {mod}"
        for p in ADAPTER_SOURCES
        for mod in _package_imports(p)
        if mod not in ("m3retriever", "m3retriever.plugin")
    }
    assert internal == set()


def test_the_adapters_use_no_deprecated_top_level_name() -> None:
    old = set()
    for path in ADAPTER_SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "m3retriever":
                old |= {f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name not in PUBLIC}
    assert old == set()
