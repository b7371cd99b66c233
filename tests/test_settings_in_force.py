"""The settings in force are a type: what resolve() fills is typed and checked as set, and the
components refuse a configuration that was not resolved."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from m3retriever import Config, ConfigError, SearchConfig
from m3retriever.components import encoders_for, reranker_for
from m3retriever.config.profiles import PROFILES
from m3retriever.config.resolution import resolve
from m3retriever.config.settings import FILLED, SearchSettings, Settings


def _always_set(configs: list[Config]) -> set[str]:
    """Settings (``search.`` for search ones) that every resolved configuration sets."""
    out: set[str] = set()
    for cls, get, prefix in ((Config, lambda s: s, ""), (SearchConfig, lambda s: s.search, "search.")):
        for f in fields(cls):
            if f.name != "search" and f.metadata.get("otherwise") is not None or f.name in ("profile", "multivector", "multivector_rescore"):
                if all(getattr(get(resolve(c)), f.name) is not None for c in configs):
                    out.add(prefix + f.name)
    return out


def test_what_resolution_always_fills_is_typed_as_filled() -> None:
    configs = [Config(profile=p) for p in PROFILES] + [Config(), Config(reranker="none", dense_encoder="none")]
    assert set(FILLED) == _always_set(configs)
    for c in configs:
        s = resolve(c)
        assert isinstance(s, Settings) and isinstance(s.search, SearchSettings)
        assert resolve(s) == s  # resolving the settings in force changes nothing


def test_settings_with_an_unset_filled_field_are_refused() -> None:
    s = resolve(Config(profile="small"))
    with pytest.raises(ConfigError, match=r"\['search.rrf_k'\] are unset"):
        replace(s, search=replace(s.search, rrf_k=None))
    with pytest.raises(ConfigError, match="resolve"):
        replace(s, search=SearchConfig())  # a plain SearchConfig is not the settings in force


def test_components_refuse_a_configuration_that_was_not_resolved() -> None:
    for build in (encoders_for, reranker_for):
        with pytest.raises(ConfigError, match="resolve"):
            build(Config(profile="small"))  # type: ignore[arg-type]
