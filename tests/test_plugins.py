"""Plugin loading: built-ins by import, third parties by entry point, M3R_LOAD_PLUGINS, broken
plugins as warnings, lazy framework imports, and a meta-test: every hook is typed, documented
in docs/plugins.md and exercised by a test.

Hermetic: every test selects its plugins with M3R_LOAD_PLUGINS, so whatever else is installed
in the environment does not change the results.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from m3retriever import builtin, hookspecs, plugins
from m3retriever.cli import main
from m3retriever.components import clear_cache, get_encoder, get_reranker
from m3retriever.config import load_config
from m3retriever.errors import PluginError

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
OURS = "llamaindex,langchain,mcp"
BUILTIN_ENCODERS = {"bge-m3", "bge-m3-onnx", "onnx-dense", "sentence-transformers", "splade", "bm25"}
BUILTIN_RERANKERS = {"cross-encoder", "onnx-cross-encoder"}

THIRD_PARTY = """
import numpy as np
from m3retriever import Encoder, EncoderSpec, Reranker, RerankerSpec, SparseVector, hookimpl
from m3retriever.types import Encoding

class WordCount(Encoder):
    def __init__(self, options):
        self.options = options
    @property
    def spec(self):
        return EncoderSpec(name="wordcount", model="len", dense_dim=None, sparse_kind="bm25", sparse_idf=True)
    def _enc(self, texts):
        return Encoding(sparse=[SparseVector.from_mapping({len(w): 1.0 for w in t.split()}) for t in texts])
    encode_query = encode_document = _enc
    def token_offsets(self, text):
        import re
        return [m.span() for m in re.finditer(r"\\S+", text)]

class LengthReranker(Reranker):
    def __init__(self, options):
        self.options = options
    @property
    def spec(self):
        return RerankerSpec("length", "len", 512)
    def score(self, query, passages):
        return np.array([float(len(p)) for p in passages], dtype=np.float32)

@hookimpl
def register_encoders(register):
    register("wordcount", WordCount)

@hookimpl
def register_rerankers(register):
    register("length", LengthReranker)

@hookimpl
def register_adapters(register):
    register("echo", lambda retriever, **options: ("echo", retriever, options))
"""

HEADER = "from m3retriever import hookimpl\n"
BROKEN = {
    # entry-point name: (module source, expected error fragment)
    "brokenimport": (
        "import frobnicate_not_installed\n",
        "ModuleNotFoundError: No module named 'frobnicate_not_installed'",
    ),
    "brokenhook": (
        HEADER + "@hookimpl\ndef register_encoders(register):\n    raise RuntimeError('boom')\n",
        "RuntimeError: boom",
    ),
    "clash": (
        HEADER
        + "@hookimpl\ndef register_encoders(register):\n    register('clash-only', dict)\n    register('bm25', dict)\n",
        "'bm25' is already registered by plugin 'builtin'",
    ),
    "typo": (HEADER + "@hookimpl\ndef register_encoder(register):\n    pass\n", "unknown hooks ['register_encoder']"),
    "badargs": (HEADER + "@hookimpl\ndef register_encoders(reg):\n    pass\n", "reg"),
}


def install(site: Path, name: str, source: str, version: str = "1.0") -> None:
    """Write a real distribution (module + dist-info with an entry point) into ``site``."""
    module = f"m3r_{name}"
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(textwrap.dedent(source))
    dist = site / f"{module}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: m3r-{name}\nVersion: {version}\n")
    (dist / "entry_points.txt").write_text(f"[m3retriever]\n{name} = {module}\n")


def reload_plugins() -> None:
    plugins.reset_plugins()
    clear_cache()


@pytest.fixture(autouse=True)
def hermetic(monkeypatch):
    """Load only our own adapters (plus what a test adds), and rebuild the manager around it."""
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, OURS)
    reload_plugins()
    yield
    reload_plugins()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path for test distributions."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    yield path
    for name in list(sys.modules):
        if name.startswith("m3r_"):
            del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture
def third_party(site, monkeypatch):
    """A working third-party distribution, selected with M3R_LOAD_PLUGINS."""
    install(site, "thirdparty", THIRD_PARTY, "1.2.3")
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, f"{OURS},thirdparty")
    importlib.invalidate_caches()
    reload_plugins()


@pytest.fixture
def broken(site, monkeypatch):
    """Broken distributions next to the working one, all selected."""
    install(site, "thirdparty", THIRD_PARTY, "1.2.3")
    for name, (source, _) in BROKEN.items():
        install(site, name, source)
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, ",".join([OURS, "thirdparty", *BROKEN]))
    importlib.invalidate_caches()
    reload_plugins()
    return site


def test_builtins_are_registered_by_import_not_by_entry_point():
    assert "[project.entry-points.m3retriever]\nbuiltin" not in (ROOT / "pyproject.toml").read_text()
    assert plugins.get_plugin_manager().get_plugin("builtin") is builtin
    assert BUILTIN_ENCODERS <= set(plugins.encoder_factories())
    assert BUILTIN_RERANKERS <= set(plugins.reranker_factories())


def test_builtins_resolve_from_a_source_checkout_without_metadata(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **_: importlib.metadata.EntryPoints([]))
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.delenv(plugins.LOAD_PLUGINS_ENV)
    reload_plugins()
    assert BUILTIN_ENCODERS <= set(plugins.encoder_factories())
    assert [(p.name, p.distribution, p.version) for p in plugins.list_plugins()] == [
        ("builtin", "m3retriever", "0.1.0")
    ]


def test_plugin_manager_is_built_once():
    assert plugins.get_plugin_manager() is plugins.get_plugin_manager()


def test_load_plugins_selects_third_party_plugins(monkeypatch):
    assert {p.name for p in plugins.list_plugins()} == {"builtin", "llamaindex", "langchain", "mcp"}
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, " mcp ,")
    reload_plugins()
    assert [p.name for p in plugins.list_plugins()] == ["builtin", "mcp"]
    assert set(plugins.adapter_factories()) == {"mcp"}


def test_empty_load_plugins_means_built_ins_only(monkeypatch):
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "")
    reload_plugins()
    assert [p.name for p in plugins.list_plugins()] == ["builtin"]
    assert BUILTIN_ENCODERS <= set(plugins.encoder_factories())
    with pytest.raises(PluginError, match="add 'langchain' to M3R_LOAD_PLUGINS"):
        plugins.get_adapter("langchain", None)


def test_load_plugins_warns_about_names_not_installed(monkeypatch, caplog):
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "mcp,nosuchplugin")
    reload_plugins()
    with caplog.at_level(logging.WARNING, logger="m3retriever.plugins"):
        plugins.get_plugin_manager()
    assert "M3R_LOAD_PLUGINS names 'nosuchplugin'" in caplog.text


def test_load_plugins_is_not_a_config_setting(monkeypatch):
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, "mcp")
    load_config(env=dict(os.environ))  # an unknown M3R_* setting would be a ConfigError


def test_register_encoders_from_a_third_party_package(third_party):
    enc = get_encoder("wordcount")
    assert enc.encode_query(["aa bbb"]).sparse[0].indices == (2, 3)
    assert get_encoder("wordcount") is enc  # one warm instance per process


def test_register_rerankers_from_a_third_party_package(third_party):
    rr = get_reranker("length")
    assert rr.score("q", ["abc", "a"]).tolist() == [3.0, 1.0]


def test_register_adapters_from_a_third_party_package(third_party):
    tag, retriever, options = plugins.get_adapter("echo", "R", flavour="x")
    assert (tag, retriever, options) == ("echo", "R", {"flavour": "x"})


def test_third_party_not_selected_is_not_loaded(third_party, monkeypatch):
    monkeypatch.setenv(plugins.LOAD_PLUGINS_ENV, OURS)
    reload_plugins()
    assert "wordcount" not in plugins.encoder_factories()
    assert "m3r_thirdparty" not in sys.modules


def test_unknown_components_are_clear_errors():
    with pytest.raises(PluginError, match="no encoder named 'nope'.*registered encoders"):
        get_encoder("nope")
    with pytest.raises(PluginError, match="no reranker named 'nope'"):
        get_reranker("nope")
    with pytest.raises(PluginError, match=r"pip install 'm3retriever\[nope\]'"):
        plugins.get_adapter("nope", None)


def test_broken_plugins_are_skipped_with_a_warning(broken, caplog):
    with caplog.at_level(logging.WARNING, logger="m3retriever.plugins"):
        encoders = plugins.encoder_factories()
    assert encoders["bm25"] is builtin._bm25  # the built-in wins the clash
    assert BUILTIN_ENCODERS | {"wordcount"} <= set(encoders)
    assert "clash-only" not in encoders  # a plugin that fails to register is skipped whole
    assert get_encoder("wordcount").encode_query(["a"]).sparse is not None
    assert {"llamaindex", "langchain", "mcp", "echo"} <= set(plugins.adapter_factories())
    for name, (_, fragment) in BROKEN.items():
        line = next(r.getMessage() for r in caplog.records if f"plugin {name!r}" in r.getMessage())
        assert f"(m3r-{name} 1.0)" in line and fragment in line and "M3R_LOAD_PLUGINS" in line
        assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_broken_plugins_are_listed_as_failed(broken):
    infos = {p.name: p for p in plugins.list_plugins()}
    for name, (_, fragment) in BROKEN.items():
        info = infos[name]
        assert info.failed and fragment in (info.error or ""), info
        assert (info.distribution, info.version, info.hooks) == (f"m3r-{name}", "1.0", ())
    assert not any(infos[name].failed for name in ("builtin", "thirdparty", "mcp"))


def test_broken_plugins_in_the_cli_listing(broken):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(broken), os.environ.get("PYTHONPATH", "")])}
    exe = Path(sys.executable).with_name("m3retriever")
    proc = subprocess.run([str(exe), "plugins", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    listed = {p["name"]: p for p in json.loads(proc.stdout)}
    assert listed["brokenhook"]["status"] == "failed" and "RuntimeError: boom" in listed["brokenhook"]["error"]
    assert listed["thirdparty"]["status"] == "loaded" and listed["thirdparty"]["error"] is None
    assert BUILTIN_ENCODERS <= set(listed["builtin"]["components"]["register_encoders"])
    assert "WARNING m3retriever.plugins: plugin 'brokenimport' (m3r-brokenimport 1.0) skipped" in proc.stderr
    proc = subprocess.run([str(exe), "plugins"], capture_output=True, text=True, timeout=120, env=env)
    assert "brokenimport  (m3r-brokenimport 1.0)\n    FAILED: import of 'm3r_brokenimport' failed" in proc.stdout


def test_a_clash_at_lookup_time_keeps_the_first_and_warns(caplog):
    class Dup:
        @hookspecs.hookimpl
        def register_encoders(self, register):
            register("bm25", object)

    plugins.get_plugin_manager().register(Dup(), name="dup")  # by hand: not checked at load time
    with caplog.at_level(logging.WARNING, logger="m3retriever.plugins"):
        assert plugins.encoder_factories()["bm25"] is builtin._bm25
        plugins.encoder_factories()
    assert caplog.text.count("'bm25' is already registered by plugin 'builtin'") == 1  # warned once
    assert "already registered" in ({p.name: p for p in plugins.list_plugins()}["dup"].error or "")


def test_loading_plugins_does_not_import_the_frameworks():
    code = textwrap.dedent(
        """
        import json, sys
        from m3retriever import plugins
        plugins.adapter_factories()
        infos = plugins.list_plugins()
        frameworks = {"mcp", "mcp_types", "llama_index", "langchain_core"}
        print(json.dumps({
            "loaded": sorted(p.name for p in infos if not p.failed),
            "imported": sorted({m.split(".")[0] for m in sys.modules} & frameworks),
        }))
        """
    )
    env = {**os.environ, plugins.LOAD_PLUGINS_ENV: OURS}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == {"loaded": ["builtin", "langchain", "llamaindex", "mcp"], "imported": []}


def test_cli_plugins_lists_third_party_with_version_and_hooks(third_party, capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "thirdparty  (m3r-thirdparty 1.2.3)" in out
    assert "register_encoders: wordcount" in out
    assert "register_rerankers: length" in out
    assert "register_adapters: echo" in out
    assert "builtin  (m3retriever 0.1.0)" in out
    assert "FAILED" not in out


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_typed_documented_and_tested(hook):
    assert hook in plugins.HOOKS
    fn = getattr(hookspecs, hook)
    sig = inspect.signature(fn)
    arg = "cli" if hook == "register_commands" else "register"  # commands are declared on a CommandLine
    assert list(sig.parameters) == [arg]
    assert sig.parameters[arg].annotation is not inspect.Parameter.empty
    assert sig.return_annotation in (None, "None")
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc and arg in doc
    page = (ROOT / "docs" / "plugins.md").read_text()
    signature = r"cli: CommandLine" if arg == "cli" else r"register: Callable\[\[str, \w+Factory\], None\]"
    assert re.search(rf"def {hook}\({signature}\) -> None", page), f"docs/plugins.md must show the signature of {hook}"
    assert f"### `{hook}`" in page, f"docs/plugins.md must have a section on {hook}"
    # a test named after the hook exercises it
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_{hook}_\w+\(", sources), f"no test_{hook}_* test"
