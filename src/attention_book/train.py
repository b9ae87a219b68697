"""One small training loop, used by every chapter that trains a model."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from . import _validate

__all__ = ["History", "train"]

# No elapsed time or rate in the bar: a page's stored output must not depend on the machine.
_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} epochs{postfix}"


@dataclass
class History:
    """What happened during training, one entry per epoch.

    Introduced in :ref:`sec-soft-lookup`.

    Attributes:
        loss: mean training loss of each epoch.
        metrics: for each name returned by ``eval_fn``, its value after each epoch.
        steps: optimiser steps taken in all.
    """

    loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0


def train(
    model: nn.Module,
    data: Dataset[tuple[torch.Tensor, ...]] | tuple[torch.Tensor, ...],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    epochs: int,
    lr: float = 1e-2,
    batch_size: int | None = 64,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    desc: str = "training",
    clip_norm: float | None = None,
    warmup: int = 0,
    decay: bool = False,
) -> History:
    """Fit ``model`` with Adam on mini-batches of ``data`` and return its history.

    Each batch is ``(*inputs, target)``: the loss is ``loss_fn(model(*inputs), target)``.
    Batches move to the device of the model's parameters, so the loop runs on CPU or CUDA.

    Args:
        model: the module to train; it is left in eval mode.
        data: a dataset of ``(*inputs, target)`` tuples, or a tuple of tensors that share
            their first dimension (the last one is the target).
        loss_fn: maps ``(prediction, target)`` to a scalar loss.
        epochs: passes over the data, > 0.
        lr: Adam's learning rate, > 0.
        batch_size: examples per step, > 0; or ``None`` when ``data`` is a list of
            ready-made batches (such as :func:`attention_book.data.length_batches` makes),
            visited in a new random order every epoch.
        eval_fn: called with the model (in eval mode, without gradients) after every
            epoch; returns named numbers, recorded in ``History.metrics``.
        generator: shuffles the batches; pass one from :func:`attention_book.seed_everything`
            for a run that does not depend on anything drawn before it.
        progress: show a progress bar with the running loss.
        desc: label of the progress bar.
        clip_norm: if given, > 0: rescale the gradient of every step whose norm is larger to
            this norm (gradient clipping, as RNNs often need).
        warmup: steps of linear learning-rate warm-up, >= 0: step ``t`` (from 0) uses
            ``lr * min(1, (t + 1) / warmup)``; 0 means the full ``lr`` from the first step.
        decay: also lower the learning rate linearly to zero over the run (step ``t`` of
            ``n`` is multiplied by ``1 - t / n``), which usually ends training more precisely.

    Returns:
        A :class:`History` with one loss (and one value per metric) per epoch.

    Introduced in :ref:`sec-soft-lookup`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = _validate.positive_int("epochs", epochs)
    if batch_size is not None:
        batch_size = _validate.positive_int("batch_size", batch_size)
    elif isinstance(data, tuple):
        raise ValueError("batch_size=None needs data as a list of batches, got a tuple of tensors")
    lr = _validate.positive("lr", lr)
    if clip_norm is not None:
        clip_norm = _validate.positive("clip_norm", clip_norm)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0 (steps), got {warmup!r}")
    if isinstance(data, tuple):
        data = _tensor_dataset(data)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    device = params[0].device
    loader: Iterable[Any]
    if type(data) is TensorDataset and batch_size is not None:  # not a subclass: it may
        # fetch its examples its own way
        loader = _ShuffledBatches(data.tensors, batch_size, generator)
    else:
        loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(params, lr=lr)
    total_steps = epochs * len(loader)

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return warm * (1.0 - step / total_steps if decay else 1.0)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor) if warmup or decay else None
    history = History()
    bar = tqdm(range(epochs), desc=desc, bar_format=_BAR_FORMAT, disable=not progress)
    for _ in bar:
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            *inputs, target = (t.to(device) for t in batch)
            loss = loss_fn(model(*inputs), target)
            optimizer.zero_grad()
            loss.backward()
            if clip_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_norm)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total += loss.item() * len(target)
            count += len(target)
            history.steps += 1
        history.loss.append(total / count)
        postfix = {"loss": f"{history.loss[-1]:.4g}"}
        if eval_fn is not None:
            model.eval()
            with torch.no_grad():
                for name, value in eval_fn(model).items():
                    history.metrics.setdefault(name, []).append(float(value))
                    postfix[name] = f"{float(value):.4g}"
        bar.set_postfix(postfix, refresh=False)
    model.eval()
    return history


class _ShuffledBatches:
    """The batches of ``DataLoader(TensorDataset(*tensors), batch_size, shuffle=True)``, cut
    by indexing.

    The DataLoader fetches every example on its own and stacks them again, which costs more
    than a small model's step. This gives the same batches, bit for bit, in the same order:
    each epoch draws from ``generator`` exactly what the DataLoader draws (a worker seed, the
    permutation, and a permutation it throws away), so a run's trajectory does not change;
    ``tests/test_train.py`` holds the two to the same batches.
    """

    def __init__(
        self, tensors: tuple[torch.Tensor, ...], batch_size: int, generator: torch.Generator | None
    ) -> None:
        self.tensors, self.batch_size, self.generator = tensors, batch_size, generator
        self.size = len(tensors[0])

    def __len__(self) -> int:
        return math.ceil(self.size / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        # the DataLoader's seed for its workers, drawn even when there are none
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        generator = self.generator
        if generator is None:  # the sampler seeds a fresh generator from the global one
            generator = torch.Generator()
            generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
        order = torch.randperm(self.size, generator=generator)
        for start in range(0, self.size, self.batch_size):
            rows = order[start : start + self.batch_size]
            yield tuple(t[rows] for t in self.tensors)
        # the sampler draws a second, unused permutation when it runs out (torch 2.x)
        torch.randperm(self.size, generator=generator)


def _tensor_dataset(data: tuple[torch.Tensor, ...]) -> TensorDataset:
    if len(data) < 2:
        raise ValueError(f"data must hold at least (inputs, target), got {len(data)} tensor(s)")
    for i, t in enumerate(data):
        _validate.tensor(f"data[{i}]", t, floating=False)
    sizes = [len(t) for t in data]
    if len(set(sizes)) != 1:
        shapes = [tuple(t.shape) for t in data]
        raise ValueError(f"data tensors must share their first dimension, got shapes {shapes}")
    if sizes[0] == 0:
        raise ValueError("data must hold at least one example, got 0")
    return TensorDataset(*data)
