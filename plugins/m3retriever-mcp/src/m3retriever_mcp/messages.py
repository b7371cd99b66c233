"""What a failed tool call tells the agent: the problem and the fix, in a few lines.

The SDK reports refused arguments with pydantic's own rendering (type codes, URLs, union
branches) and a crash as a bare ``Error executing tool <name>``; these functions turn both into
messages an agent can act on.
"""

from __future__ import annotations

from typing import Any, Mapping

from mcp.server.mcpserver.exceptions import UnexpectedResourceError, UnexpectedToolError
from pydantic import ValidationError

__all__ = ["validation_message", "internal_error_message", "root_cause"]

MAX_LISTED = 8
"""Problems listed in one message; the rest are counted."""

_VALUE_ERROR = "Value error, "
_NO_INPUT_SHOWN = {"missing", "value_error", "assertion_error", "extra_forbidden"}
_REF = "#/$defs/"


def _short(value: Any) -> str:
    """A bounded rendering of a refused value (a 100,000-character query is not echoed)."""
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:40]!r}... ({len(value):,} characters)"
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + "..."


def _where(loc: tuple[Any, ...]) -> str:
    """``documents[0].doc_id`` from pydantic's location, without its union-branch labels."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not any(c in str(part) for c in "[]()"):
            out += ("." if out else "") + str(part)
    return out or "arguments"


def _resolve(schema: Mapping[str, Any], node: Any) -> Any:
    """``node`` with a local ``$ref`` followed and an optional (``anyOf`` with null) unwrapped."""
    for _ in range(8):
        if not isinstance(node, Mapping):
            return None
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            node = schema.get("$defs", {}).get(ref.removeprefix(_REF))
            continue
        branches = [b for b in node.get("anyOf", ()) if not (isinstance(b, Mapping) and b.get("type") == "null")]
        if "anyOf" in node and len(branches) == 1:
            node = branches[0]
            continue
        return node
    return None


def _fields_at(schema: Mapping[str, Any] | None, loc: tuple[Any, ...]) -> list[str] | None:
    """The property names of the object at ``loc`` in a tool's input schema, if it can be told."""
    node = _resolve(schema, schema) if schema is not None else None
    for part in loc:
        if node is None or schema is None:
            return None
        if isinstance(part, int):
            node = _resolve(schema, node.get("items"))
        else:
            node = _resolve(schema, node.get("properties", {}).get(part))
    props = node.get("properties") if node is not None else None
    return list(props) if isinstance(props, Mapping) else None


def _unknown(loc: tuple[Any, ...], schema: Mapping[str, Any] | None) -> str:
    """What an ``extra_forbidden`` error tells the agent: the unknown name and the accepted ones."""
    fields = _fields_at(schema, loc[:-1])
    if fields is None:
        accepted = "the tool's input schema lists the accepted ones"
    elif not fields:
        accepted = "this tool takes no arguments" if len(loc) == 1 else "this object takes no fields"
    else:
        accepted = f"{'this tool accepts' if len(loc) == 1 else 'accepted here'}: {', '.join(fields)}"
    kind = "argument" if len(loc) == 1 else "field"
    return f"unknown {kind} '{loc[-1]}'; {accepted}; remove it (unknown names are refused, never ignored)"


def _line(error: Any, schema: Mapping[str, Any] | None = None) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        msg = _unknown(loc, schema)
    else:
        msg = str(error["msg"]).removeprefix(_VALUE_ERROR)  # our validators: the library's message
    line = f"- {_where(loc)}: {msg}"
    value = error.get("input")
    if error["type"] not in _NO_INPUT_SHOWN and not isinstance(value, (dict, list)):
        line += f" (got {_short(value)})"
    return line


def validation_message(tool: str, error: ValidationError, schema: Mapping[str, Any] | None = None) -> str:
    """The message for arguments that failed the tool's input schema.

    Args:
        tool: The tool's name.
        error: The SDK's validation error of the arguments.
        schema: The tool's input schema, to name the accepted arguments (or fields) next to
            an unknown one.

    Returns:
        One line per problem (argument path, what is wrong, the value given), then the fix.
    """
    lines = list(dict.fromkeys(_line(e, schema) for e in error.errors(include_url=False)))
    shown = lines[:MAX_LISTED]
    if len(lines) > MAX_LISTED:
        shown.append(f"- ... and {len(lines) - MAX_LISTED} more")
    return "\n".join(
        [f"Invalid arguments for tool '{tool}':", *shown]
        + ["Correct these arguments (the tool's input schema gives every type and limit) and call it again."]
    )


def root_cause(exc: BaseException) -> BaseException:
    """The exception under the SDK's ``Unexpected...Error`` wrappers."""
    while isinstance(exc, (UnexpectedToolError, UnexpectedResourceError)) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def internal_error_message(tool: str, exc: BaseException) -> str:
    """The message for a tool that crashed: the exception's type, never its text (which may
    hold paths or data of the server)."""
    return (
        f"Internal error in tool '{tool}' ({type(root_cause(exc)).__name__}); the server logged the "
        "details. Changing the arguments will probably not help: retry later, or report it to "
        "whoever runs this MCP server."
    )
