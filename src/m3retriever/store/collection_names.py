"""The one rule for collection names, and the one way a name becomes a path.

A collection name comes from users (``--collection``, ``M3R_COLLECTION``, a config file, the
MCP server's options) and from files users hand over (a snapshot's manifest, a copy's target):
all of them go through :func:`check_name`. The embedded store turns a name into folders and
files under its directory only through :func:`path_in`, which refuses anything that would
lie outside it, whatever the name (internal names, such as a build copy's, pass here too).
"""

from __future__ import annotations

import re
from pathlib import Path

from m3retriever.errors import ConfigError, StoreError

__all__ = ["NAME_RULE", "check_name", "is_valid_name", "path_in"]

NAME_RULE = "1 to 64 letters, digits, '_' or '-', starting with a letter or a digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def is_valid_name(name: object) -> bool:
    """Whether ``name`` follows the collection name rule (:data:`NAME_RULE`)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: object, where: str = "collection name") -> str:
    """``name`` if it follows the rule.

    Args:
        name: The name to check.
        where: What the name is, for the message (``"the snapshot's collection name"``).

    Raises:
        ConfigError: naming the value, the rule and the fix.
    """
    if not is_valid_name(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80]) + "..."
        legacy = ""
        if isinstance(name, str) and "." in name.strip(".") and is_valid_name(name.replace(".", "-")):
            legacy = (
                f"; a collection an earlier version created as {name!r} keeps its data: rename its folder "
                f"and its {name}.m3r.json file in the store to {name.replace('.', '-')!r} and use that name"
            )
        raise ConfigError(
            f"{where} {shown} is not allowed: use {NAME_RULE} (for example 'docs' or 'my-notes_2'){legacy}"
        )
    assert isinstance(name, str)
    return name


def path_in(root: Path, name: str, suffix: str = "") -> Path:
    """``root / (name + suffix)``, checked to be one entry directly inside ``root``.

    Raises:
        StoreError: if ``name`` is empty, ``.`` or ``..``, holds a path separator or a NUL, or
            the path would otherwise leave ``root``. Nothing is created or deleted.
    """
    entry = name + suffix
    bad = (
        not name
        or name in (".", "..")
        or entry in (".", "..")
        or any(c in entry for c in ("/", "\\", "\0"))
        or Path(entry).is_absolute()
    )
    target = root / entry  # the last part is not resolved: a collection folder may be a link
    if bad or target.parent != root:
        raise StoreError(
            f"refusing the collection name {name!r}: its files would not lie directly inside the store "
            f"directory {root}; use {NAME_RULE}"
        )
    return target
