"""The plugin manager: built lazily, once, from the ``m3retriever`` entry-point group."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

import pluggy

from m3retriever import hookspecs
from m3retriever.errors import PluginError

__all__ = [
    "ENTRY_POINT_GROUP",
    "get_plugin_manager",
    "encoder_factories",
    "reranker_factories",
    "adapter_factories",
    "get_adapter",
    "PluginInfo",
    "list_plugins",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "m3retriever"

_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, loading entry points on first call."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
            pm.add_hookspecs(hookspecs)
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            _pm = pm
            logger.debug("loaded plugins: %s", [n for n, _ in pm.list_name_plugin()])
        return _pm


def _collect(hook_name: str) -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    owners: dict[str, str] = {}
    pm = get_plugin_manager()
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)

        def register(name: str, factory: Callable[..., Any], _owner: str = plugin_name) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {_owner!r} registered a component with an empty name")
            if name in found:
                raise PluginError(
                    f"{hook_name}: {name!r} is registered by both {owners[name]!r} and {_owner!r}; "
                    "uninstall one of the two packages"
                )
            found[name] = factory
            owners[name] = _owner

        impl.function(register=register)
    return found


def encoder_factories() -> dict[str, Callable[..., Any]]:
    """All registered encoder factories by name."""
    return _collect("register_encoders")


def reranker_factories() -> dict[str, Callable[..., Any]]:
    """All registered reranker factories by name."""
    return _collect("register_rerankers")


def adapter_factories() -> dict[str, Callable[..., Any]]:
    """All registered adapter factories by name."""
    return _collect("register_adapters")


def get_adapter(name: str, retriever: Any, **options: Any) -> Any:
    """Build the adapter ``name`` around ``retriever``.

    Raises:
        PluginError: if no installed plugin registers ``name``; the message lists what is
            available and the pip extra that usually provides it.
    """
    factories = adapter_factories()
    if name not in factories:
        raise PluginError(
            f"no adapter named {name!r}; installed adapters: {sorted(factories) or 'none'}. "
            f"Install it with: pip install 'm3retriever[{name}]'"
        )
    return factories[name](retriever, **options)


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin, as shown by ``m3retriever plugins``.

    Attributes:
        name: Entry-point name (or module name for plugins registered by hand).
        distribution: The installed distribution that provides it.
        version: That distribution's version.
        hooks: Hooks the plugin implements.
        components: What it registers, per hook.
    """

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    components: dict[str, tuple[str, ...]]


def list_plugins() -> list[PluginInfo]:
    """Describe every loaded plugin: distribution, version, hooks and components."""
    pm = get_plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or []))
        components: dict[str, tuple[str, ...]] = {}
        for hook_name in hooks:
            names: list[str] = []
            getattr(plugin, hook_name)(register=lambda n, _f, _names=names: _names.append(n))
            components[hook_name] = tuple(names)
        dist = dists.get(id(plugin))
        dist_name = dist.metadata["name"] if dist is not None else None
        version = dist.version if dist is not None else None
        infos.append(PluginInfo(name, dist_name, version, hooks, components))
    return infos

