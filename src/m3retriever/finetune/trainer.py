"""Train a sentence-transformers model with MultipleNegativesRankingLoss on mined examples.

A plain PyTorch loop over the library's loss modules (no ``datasets`` / ``accelerate`` Trainer):
seeded shuffles, batches without repeated passages (a repeated passage would be its own
in-batch negative), AdamW with linear warm-up and decay, gradient clipping at 1.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from m3retriever._deps import require
from m3retriever.errors import ConfigError
from m3retriever.finetune.mining import Example
from m3retriever.runtime.st_models import load_sentence_transformer

__all__ = ["Recipe", "TrainResult", "train_model", "load_model"]

logger = logging.getLogger(__name__)

Loss = Literal["mnrl", "cached-mnrl"]


@dataclass(frozen=True)
class Recipe:
    """How a model is fine-tuned.

    Attributes:
        loss: ``"mnrl"`` (MultipleNegativesRankingLoss) or ``"cached-mnrl"`` (its cached
            variant, GradCache: large batches in the memory of ``mini_batch_size``).
        batch_size: Examples per step (each brings its negatives; every other passage of the
            batch is an in-batch negative).
        mini_batch_size: Forward chunk of the cached loss.
        epochs: Passes over the examples.
        lr: Peak learning rate (AdamW).
        warmup_ratio: Fraction of the steps spent warming the learning rate up.
        max_length: Token limit of queries and passages while training (the model keeps
            its own limit for encoding; all-MiniLM-L6-v2 itself was trained at 128).
        negatives: Hard negatives per example.
        depth: Fused candidates read per query when mining.
        skip: Top non-relevant candidates passed over when mining.
        heldout: Fraction of the queries held back to measure the model before and after.
        heldout_pool: Fused candidates per held-back query that, with their relevant
            documents, form the corpus the held-back queries are measured on (0: every chunk
            of the collection; a pool keeps the two extra encodings cheap on a large one).
        seed: Seed of the split, the shuffles and the weights' dropout.
        scale: Similarity scale of the loss (inverse temperature).
    """

    loss: Loss = "mnrl"
    batch_size: int = 32
    mini_batch_size: int = 16
    epochs: float = 1.0
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    max_length: int = 128
    negatives: int = 1
    depth: int = 30
    skip: int = 2
    heldout: float = 0.1
    heldout_pool: int = 0
    seed: int = 42
    scale: float = 20.0

    def __post_init__(self) -> None:
        if self.loss not in ("mnrl", "cached-mnrl"):
            raise ConfigError(f"loss must be 'mnrl' or 'cached-mnrl', got {self.loss!r}")
        for name in ("batch_size", "mini_batch_size", "max_length", "depth"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2 (in-batch negatives need a second example)")
        if self.epochs <= 0 or self.lr <= 0:
            raise ConfigError(f"epochs and lr must be positive, got {self.epochs} and {self.lr}")
        if self.negatives < 0 or self.skip < 0 or self.heldout_pool < 0 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError("negatives and skip must be >= 0 and warmup_ratio in [0, 1)")

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly values."""
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """What training did: ``steps`` optimizer steps, the mean loss of the first and last
    tenth of them, and the wall time in seconds."""

    steps: int
    first_loss: float
    last_loss: float
    seconds: float


def load_model(model: str, max_length: int, device: str = "cpu") -> Any:
    """A ``SentenceTransformer`` from a hub id or folder, ``max_seq_length`` capped.

    Raises:
        ModelNotFoundError: It cannot be loaded.
    """
    return load_sentence_transformer(
        model, device=device, max_length=max_length, purpose="Fine-tuning", task="to fine-tune"
    )


def _training_length(model: Any, recipe: Recipe) -> int:
    """The token limit while training: the recipe's, never above the model's own."""
    limit = model.max_seq_length
    return min(recipe.max_length, limit) if limit else recipe.max_length


def batches(examples: Sequence[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffle and cut into batches in which no passage or query appears twice."""
    order = list(examples)
    rng.shuffle(order)
    out: list[list[Example]] = []
    pending = order
    while pending:
        batch: list[Example] = []
        seen: set[str] = set()
        rest: list[Example] = []
        for ex in pending:
            texts = {ex.query, ex.positive, *ex.negatives}
            if len(batch) < size and not texts & seen:
                batch.append(ex)
                seen |= texts
            else:
                rest.append(ex)
        out.append(batch)
        pending = rest
    return out


def train_model(model: Any, examples: Sequence[Example], recipe: Recipe) -> TrainResult:
    """Fine-tune ``model`` (a ``SentenceTransformer``) in place.

    Every example takes exactly ``recipe.negatives`` negatives (examples with fewer are
    trained without hard negatives when none has them, else left out).
    """
    torch = require("torch", package="torch", extra="torch", purpose="Fine-tuning")
    losses = require(
        "sentence_transformers.sentence_transformer.losses",
        package="sentence-transformers",
        extra="torch",
        purpose="Fine-tuning",
    )
    transformers = require("transformers", package="transformers", extra="torch", purpose="Fine-tuning")
    start = time.perf_counter()
    k = recipe.negatives
    usable = [e for e in examples if len(e.negatives) >= k]
    if len(usable) < len(examples):
        logger.warning("%d example(s) have fewer than %d negatives and are left out", len(examples) - len(usable), k)
    if len(usable) < 2:
        raise ConfigError(f"fine-tuning needs at least 2 usable examples, got {len(usable)}")
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    if recipe.loss == "cached-mnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(model, scale=recipe.scale, mini_batch_size=recipe.mini_batch_size)
    else:
        loss = losses.MultipleNegativesRankingLoss(model, scale=recipe.scale)
    per_epoch = len(batches(usable, recipe.batch_size, random.Random(recipe.seed)))
    total = max(1, round(per_epoch * recipe.epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    schedule = transformers.get_linear_schedule_with_warmup(optimizer, int(total * recipe.warmup_ratio), total)
    device = model.device
    history: list[float] = []
    # Trained at the recipe's length (cheaper), the model keeps its own for encoding.
    own_length, model.max_seq_length = model.max_seq_length, _training_length(model, recipe)
    model.train()
    while len(history) < total:
        for batch in batches(usable, recipe.batch_size, rng):
            if len(history) >= total:
                break
            columns = [[e.query for e in batch], [e.positive for e in batch]]
            columns += [[e.negatives[i] for e in batch] for i in range(k)]
            features = [_to(model.preprocess(col), device) for col in columns]
            value = loss(features, torch.zeros(len(batch), device=device))
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            history.append(float(value.detach()))
            logger.info("fine-tune step %d/%d loss %.4f", len(history), total, history[-1])
    model.eval()
    model.max_seq_length = own_length
    tenth = max(1, len(history) // 10)
    return TrainResult(
        len(history),
        sum(history[:tenth]) / tenth,
        sum(history[-tenth:]) / tenth,
        time.perf_counter() - start,
    )


def _to(features: dict[str, Any], device: Any) -> dict[str, Any]:
    return {key: value.to(device) if hasattr(value, "to") else value for key, value in features.items()}


def save_model(model: Any, path: Path) -> None:
    """Write the model as a sentence-transformers folder."""
    path.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
