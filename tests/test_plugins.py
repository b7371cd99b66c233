"""Plugin discovery through the entry-point group, third-party registration, and a meta-test:
every hook is typed, documented in docs/plugins.md and exercised by a test."""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import sys
import textwrap
from pathlib import Path

import pytest

from m3retriever import hookspecs, plugins
from m3retriever.cli import main
from m3retriever.components import clear_cache, get_encoder, get_reranker
from m3retriever.errors import PluginError

ROOT = Path(__file__).resolve().parents[1]
HOOKS = [name for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


@pytest.fixture
def fresh_plugins():
    """Rebuild the plugin manager after the test changes what is installed."""
    plugins._pm = None
    clear_cache()
    yield
    plugins._pm = None
    clear_cache()


@pytest.fixture
def third_party(tmp_path, monkeypatch, fresh_plugins):
    """Install a real third-party distribution (dist-info + entry point) on sys.path."""
    pkg = tmp_path / "site"
    (pkg / "m3r_thirdparty").mkdir(parents=True)
    (pkg / "m3r_thirdparty" / "__init__.py").write_text(
        textwrap.dedent(
            '''
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
                encode_query = encode_documents = _enc
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
            '''
        )
    )
    dist = pkg / "m3r_thirdparty-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: m3r-thirdparty\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[m3retriever]\nthirdparty = m3r_thirdparty\n")
    monkeypatch.syspath_prepend(str(pkg))
    importlib.invalidate_caches()
    yield
    sys.modules.pop("m3r_thirdparty", None)


def test_builtins_come_through_the_entry_point_group():
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="m3retriever")}
    assert eps["builtin"] == "m3retriever.builtin"
    names = dict(plugins.get_plugin_manager().list_name_plugin())
    assert "builtin" in names  # registered by its entry-point name, like any plugin
    assert {"bge-m3", "onnx-dense", "sentence-transformers", "splade", "bm25"} <= set(plugins.encoder_factories())
    assert {"cross-encoder", "onnx-cross-encoder"} <= set(plugins.reranker_factories())


def test_plugin_manager_is_built_once():
    assert plugins.get_plugin_manager() is plugins.get_plugin_manager()


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


def test_unknown_components_are_clear_errors(fresh_plugins):
    with pytest.raises(PluginError, match="no encoder named 'nope'.*registered encoders"):
        get_encoder("nope")
    with pytest.raises(PluginError, match="no reranker named 'nope'"):
        get_reranker("nope")
    with pytest.raises(PluginError, match=r"pip install 'm3retriever\[nope\]'"):
        plugins.get_adapter("nope", None)


def test_duplicate_names_are_refused(fresh_plugins):
    class Dup:
        @hookspecs.hookimpl
        def register_encoders(self, register):
            register("bm25", object)

    pm = plugins.get_plugin_manager()
    pm.register(Dup(), name="dup")
    with pytest.raises(PluginError, match="'bm25' is registered by both 'builtin' and 'dup'"):
        plugins.encoder_factories()


def test_cli_plugins_lists_third_party_with_version_and_hooks(third_party, capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "thirdparty  (m3r-thirdparty 1.2.3)" in out
    assert "register_encoders: wordcount" in out
    assert "register_rerankers: length" in out
    assert "register_adapters: echo" in out
    assert "builtin  (m3retriever 0.1.0)" in out


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_typed_documented_and_tested(hook):
    fn = getattr(hookspecs, hook)
    sig = inspect.signature(fn)
    assert list(sig.parameters) == ["register"]
    assert sig.parameters["register"].annotation is not inspect.Parameter.empty
    assert sig.return_annotation in (None, "None")
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc and "register" in doc
    page = (ROOT / "docs" / "plugins.md").read_text()
    assert re.search(rf"def {hook}\(register: Callable\[\[str, \w+Factory\], None\]\) -> None", page), (
        f"docs/plugins.md must show the signature of {hook}"
    )
    # a test named after the hook exercises it
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"def test_{hook}_\w+\(", sources), f"no test_{hook}_* test"
