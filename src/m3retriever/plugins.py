"""The plugin manager: built-ins registered by import, third parties by entry point.

The built-in encoders and rerankers (:mod:`m3retriever.builtin`) are registered by import, so
a source checkout that is not pip-installed has them too. Third-party plugins come from the
``m3retriever`` entry-point group; ``M3R_LOAD_PLUGINS`` (comma-separated entry-point names, an
empty string for none) selects which of them load.

A plugin that fails to import or to register is skipped with a logged warning naming it and
its error; ``m3retriever plugins`` lists it as failed and everything else keeps working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from m3retriever import hookspecs
from m3retriever.errors import PluginError

__all__ = [
    "ENTRY_POINT_GROUP",
    "LOAD_PLUGINS_ENV",
    "BUILTIN_NAME",
    "HOOKS",
    "get_plugin_manager",
    "reset_plugins",
    "selected_plugins",
    "encoder_factories",
    "reranker_factories",
    "adapter_factories",
    "query_generator_factories",
    "reader_factories",
    "reader_owners",
    "get_adapter",
    "plugin_commands",
    "PluginInfo",
    "list_plugins",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "m3retriever"
LOAD_PLUGINS_ENV = "M3R_LOAD_PLUGINS"
BUILTIN_NAME = "builtin"
BUILTIN_MODULE = "m3retriever.builtin"
HOOKS: tuple[str, ...] = tuple(name for name in hookspecs.__all__ if name.startswith("register_"))

COMMANDS_HOOK = "register_commands"

Factories = dict[str, Callable[..., Any]]


@dataclass(frozen=True)
class PluginInfo:
    """A plugin as shown by ``m3retriever plugins``.

    Attributes:
        name: Entry-point name (``"builtin"`` for the built-ins, the name given to
            ``register`` for plugins registered by hand).
        distribution: The distribution that provides it, if known.
        version: That distribution's version, if known.
        hooks: Hooks the plugin implements (empty when it failed to load).
        components: What it registers, per hook.
        error: Why the plugin was skipped (or some of its components were), else ``None``.
    """

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    components: dict[str, tuple[str, ...]]
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Whether the plugin, or one of its components, was skipped."""
        return self.error is not None


@dataclass
class _State:
    """What one load found: the manager, where each plugin came from, and what failed."""

    pm: pluggy.PluginManager
    dists: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    owners: dict[str, dict[str, str]] = field(default_factory=lambda: {hook: {} for hook in HOOKS})
    failed: list[PluginInfo] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


_lock = threading.RLock()
_state: _State | None = None


def selected_plugins() -> frozenset[str] | None:
    """The third-party entry-point names ``M3R_LOAD_PLUGINS`` selects.

    Returns:
        ``None`` when the variable is unset (every installed plugin loads), else the set of
        names (empty for ``M3R_LOAD_PLUGINS=""``: no third-party plugin loads). The built-ins
        always load.
    """
    raw = os.environ.get(LOAD_PLUGINS_ENV)
    if raw is None:
        return None
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


def get_plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager, loading the plugins on first call."""
    return _loaded().pm


def reset_plugins() -> None:
    """Forget the loaded plugins: the next lookup loads them again (and reads
    ``M3R_LOAD_PLUGINS`` again). Shared encoder instances are kept; see
    :func:`m3retriever.components.clear_cache`."""
    global _state
    with _lock:
        _state = None


def _loaded() -> _State:
    global _state
    with _lock:
        if _state is None:
            state = _State(pluggy.PluginManager(ENTRY_POINT_GROUP))
            state.pm.add_hookspecs(hookspecs)
            builtin = importlib.import_module(BUILTIN_MODULE)
            _add_plugin(state, builtin, BUILTIN_NAME, _own_distribution())
            _load_entry_points(state)
            _state = state
            logger.debug("loaded plugins: %s", [name for name, _ in state.pm.list_name_plugin()])
        return _state


def _own_distribution() -> tuple[str | None, str | None]:
    try:
        return "m3retriever", importlib.metadata.version("m3retriever")
    except importlib.metadata.PackageNotFoundError:  # a source checkout that is not installed
        from m3retriever import __version__

        return "m3retriever", __version__


def _load_entry_points(state: _State) -> None:
    selected = selected_plugins()
    found: set[str] = set()
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(entry_points, key=lambda ep: ep.name):
        if ep.value.strip() == BUILTIN_MODULE:
            continue  # metadata of an older install that declared the built-ins as an entry point
        found.add(ep.name)
        if selected is not None and ep.name not in selected:
            logger.debug("plugin %r not loaded: not in %s", ep.name, LOAD_PLUGINS_ENV)
            continue
        dist = ep.dist
        source = (dist.name, dist.version) if dist is not None else (None, None)
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin is a warning, not an outage
            _fail(state, ep.name, source, f"import of {ep.value!r} failed: {_describe(exc)}")
            continue
        _add_plugin(state, plugin, ep.name, source)
    for name in sorted((selected or frozenset()) - found - {BUILTIN_NAME}):
        logger.warning(
            "%s names %r, but no installed package has an %r entry point of that name; installed: %s",
            LOAD_PLUGINS_ENV,
            name,
            ENTRY_POINT_GROUP,
            sorted(found) or "none",
        )


def _add_plugin(state: _State, plugin: object, name: str, source: tuple[str | None, str | None]) -> None:
    """Register ``plugin`` if it registers cleanly, else record it as failed."""
    pm = state.pm
    if pm.get_plugin(name) is not None:
        other = state.dists.get(name, (None, None))[0]
        _fail(state, name, source, f"the name {name!r} is already taken by the plugin from {other or 'elsewhere'}")
        return
    try:
        unknown = _unknown_hooks(plugin)
        if unknown:
            raise PluginError(f"implements unknown hooks {unknown}; the hooks are {list(HOOKS)}")
        pm.register(plugin, name=name)
        provided = {hook: _call_hook(pm, plugin, hook) for hook in _hooks_of(pm, plugin)}
        for hook, factories in provided.items():
            _check_clashes(hook, factories, state.owners[hook], name)
    except Exception as exc:  # a broken plugin is a warning, not an outage
        if pm.is_registered(plugin):
            pm.unregister(plugin)
        _fail(state, name, source, f"registration failed: {_describe(exc)}")
        return
    for hook, factories in provided.items():
        state.owners[hook].update(dict.fromkeys(factories, name))
    state.dists[name] = source


def _unknown_hooks(plugin: object) -> list[str]:
    marker = f"{ENTRY_POINT_GROUP}_impl"
    return sorted(attr for attr in dir(plugin) if hasattr(getattr(plugin, attr, None), marker) and attr not in HOOKS)


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    implemented = {caller.name for caller in pm.get_hookcallers(plugin) or []}
    return [hook for hook in HOOKS if hook in implemented]


def _call_hook(pm: pluggy.PluginManager, plugin: object, hook: str) -> Factories:
    """Run one plugin's implementation of ``hook``; return what it registers, checked."""
    provided: Factories = {}

    def register(name: str, factory: Callable[..., Any]) -> None:
        if not isinstance(name, str) or not name.strip():
            raise PluginError(f"{hook}: component names must be non-empty strings, got {name!r}")
        if not callable(factory):
            raise PluginError(f"{hook}: the factory for {name!r} is not callable: {factory!r}")
        if name in provided:
            raise PluginError(f"{hook}: {name!r} is registered twice by the same plugin")
        provided[name] = factory

    for impl in getattr(pm.hook, hook).get_hookimpls():
        if impl.plugin is not plugin:
            continue
        if hook == COMMANDS_HOOK:
            provided.update(_declared_commands(impl.function))
        else:
            impl.function(register=register)
    return provided


def _declared_commands(function: Callable[..., Any]) -> Factories:
    """The commands a ``register_commands(cli)`` implementation declares, by name."""
    from m3retriever.cli.registry import CommandLine

    cli = CommandLine()
    function(cli=cli)
    return dict(cli.commands)


def _check_clashes(hook: str, provided: Factories, owners: dict[str, str], name: str) -> None:
    for component in sorted(provided):
        if component in owners and owners[component] != name:
            raise PluginError(
                f"{hook}: {component!r} is already registered by plugin {owners[component]!r} "
                "(component names must be unique)"
            )


def _describe(exc: BaseException) -> str:
    message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {message}"


def _fail(state: _State, name: str, source: tuple[str | None, str | None], error: str) -> None:
    dist, version = source
    logger.warning(
        "plugin %r (%s) skipped: %s. Fix or uninstall it, or leave it out of %s",
        name,
        f"{dist} {version}" if dist else "unknown distribution",
        error,
        LOAD_PLUGINS_ENV,
    )
    state.failed.append(PluginInfo(name, dist, version, (), {}, error))


def _problem(state: _State, name: str, error: str) -> None:
    """A loaded plugin misbehaved at lookup time: warn once, remember it for the listing."""
    with _lock:
        if state.problems.get(name) == error:
            return
        state.problems[name] = error
    logger.warning("plugin %r: %s; its components for that hook are skipped", name, error)


def _collect(hook: str) -> Factories:
    """Every plugin's components for ``hook``; a misbehaving plugin's are skipped."""
    return _collect_owned(hook)[0]


def _collect_owned(hook: str) -> tuple[Factories, dict[str, str]]:
    """:func:`_collect`, and the plugin that provides each component."""
    state = _loaded()
    pm = state.pm
    found: Factories = {}
    owners: dict[str, str] = {}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        name = pm.get_name(impl.plugin) or repr(impl.plugin)
        try:
            provided = _call_hook(pm, impl.plugin, hook)
            _check_clashes(hook, provided, owners, name)
        except Exception as exc:  # a broken plugin is a warning, not an outage
            _problem(state, name, _describe(exc))
            continue
        found.update(provided)
        owners.update(dict.fromkeys(provided, name))
    return found, owners


def encoder_factories() -> Factories:
    """All registered encoder factories by name."""
    return _collect("register_encoders")


def reranker_factories() -> Factories:
    """All registered reranker factories by name."""
    return _collect("register_rerankers")


def adapter_factories() -> Factories:
    """All registered adapter factories by name."""
    return _collect("register_adapters")


def query_generator_factories() -> Factories:
    """All registered synthetic query generator factories by name."""
    return _collect("register_query_generators")


def reader_factories() -> Factories:
    """All registered file reader factories by suffix (lower case, with its dot)."""
    return {suffix.lower(): factory for suffix, factory in _collect("register_readers").items()}


def reader_owners() -> dict[str, str]:
    """The plugin that registers each file suffix's reader."""
    return {suffix.lower(): owner for suffix, owner in _collect_owned("register_readers")[1].items()}


def plugin_commands() -> dict[str, tuple[str, Any]]:
    """Every loaded plugin's commands by name: ``(plugin name, command)``, the command a
    :class:`~m3retriever.cli.registry.Command`."""
    found, owners = _collect_owned(COMMANDS_HOOK)
    return {name: (owners[name], command) for name, command in found.items()}


def get_adapter(name: str, retriever: Any, **options: Any) -> Any:
    """Build the adapter ``name`` around ``retriever``.

    Raises:
        PluginError: if no loaded plugin registers ``name``; the message lists what is
            available, the pip extra that usually provides it, and any plugin that failed.
    """
    factories = adapter_factories()
    if name not in factories:
        hint = f"Install it with: pip install 'm3retriever[{name}]'"
        state = _loaded()
        if state.failed:
            failed = sorted({info.name for info in state.failed})
            hint += f" (plugins that failed to load: {failed}; see 'm3retriever plugins')"
        selected = selected_plugins()
        if selected is not None and name not in selected:
            hint += f", and add {name!r} to {LOAD_PLUGINS_ENV}"
        raise PluginError(f"no adapter named {name!r}; installed adapters: {sorted(factories) or 'none'}. {hint}")
    return factories[name](retriever, **options)


def list_plugins() -> list[PluginInfo]:
    """Describe every plugin: the loaded ones (distribution, version, hooks, components) and
    the ones that failed to load (with their error), sorted by name."""
    state = _loaded()
    pm = state.pm
    infos = list(state.failed)
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = tuple(_hooks_of(pm, plugin))
        components: dict[str, tuple[str, ...]] = {}
        error = state.problems.get(name)
        for hook in hooks:
            try:
                components[hook] = tuple(_call_hook(pm, plugin, hook))
            except Exception as exc:  # shown in the listing, not raised
                components[hook] = ()
                error = error or _describe(exc)
        dist, version = state.dists.get(name, (None, None))
        infos.append(PluginInfo(name, dist, version, hooks, components, error))
    return sorted(infos, key=lambda info: (info.name, info.distribution or ""))
