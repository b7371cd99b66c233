"""Loading a sentence-transformers model: the ``sentence-transformers`` dense encoder and
fine-tuning load theirs the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from m3retriever._deps import require
from m3retriever.errors import ModelNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

__all__ = ["load_sentence_transformer"]


def load_sentence_transformer(
    model: str, *, device: str, max_length: int, purpose: str, task: str | None = None
) -> "SentenceTransformer":
    """A ``SentenceTransformer`` from a hub id or local folder, ``max_seq_length`` capped.

    Args:
        model: Hub id or local sentence-transformers folder.
        device: A concrete device (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        max_length: Token limit; the model's own ``max_seq_length`` stays when it is lower.
        purpose: What needs the model, for the missing-dependency error.
        task: What the model is loaded for, in the not-found error (``"to fine-tune"``).

    Returns:
        The loaded model (in the mode sentence-transformers leaves it).

    Raises:
        MissingDependencyError: sentence-transformers is not installed (names the ``torch``
            extra).
        BrokenDependencyError: It is installed but fails to import.
        ModelNotFoundError: The model cannot be loaded.
    """
    st = require("sentence_transformers", package="sentence-transformers", extra="torch", purpose=purpose)
    try:
        loaded = st.SentenceTransformer(model, device=device)
    except (OSError, ValueError) as exc:
        what = f"{model!r} {task}" if task else repr(model)
        raise ModelNotFoundError(
            f"Could not load the sentence-transformers model {what}: {exc}. Pass a hub id "
            "reachable from this machine or a local sentence-transformers folder."
        ) from exc
    limit = loaded.max_seq_length
    loaded.max_seq_length = min(max_length, limit) if limit else max_length
    built: SentenceTransformer = loaded
    return built
