"""Detection scenes: one to three shapes, with their shapes and boxes as targets."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import _validate
from .canvas import SHAPES, Scene, Seed, random_scenes, stack_images

__all__ = ["detection_scenes", "detection_targets"]


def detection_scenes(
    n: int, size: int = 32, num_objects: tuple[int, int] = (1, 3), seed: Seed = 0
) -> list[Scene]:
    """Draw ``n`` detection scenes: one to three shapes of any colour, 6 to 12 pixels wide.

    Args:
        n: number of scenes, > 0.
        size: the canvas side in pixels.
        num_objects: the inclusive range ``(low, high)`` of objects per scene.
        seed: an int or a ``torch.Generator``.

    Returns:
        ``n`` scenes.

    Introduced in :ref:`sec-detection`.
    """
    return random_scenes(n, size, num_objects, min_size=6, max_size=12, seed=seed)


def detection_targets(
    scenes: Sequence[Scene], max_objects: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Collect the shapes and boxes of every scene, padded to ``max_objects``.

    Args:
        scenes: scenes with at most ``max_objects`` objects each, all of one size.
        max_objects: the padded number of objects, > 0.

    Returns:
        ``(labels, boxes)``: ``labels`` ``(n, max_objects)`` long, the index of each
        object's shape in :data:`SHAPES` and -1 for padding; ``boxes``
        ``(n, max_objects, 4)`` float, ``(x0, y0, x1, y1)`` divided by the canvas size (so
        in ``[0, 1]``), zeros for padding.

    Introduced in :ref:`sec-detection`.
    """
    max_objects = _validate.positive_int("max_objects", max_objects)
    images = stack_images(scenes)
    size = images.shape[-1]
    labels = torch.full((len(scenes), max_objects), -1, dtype=torch.long)
    boxes = torch.zeros(len(scenes), max_objects, 4)
    for i, scene in enumerate(scenes):
        if len(scene.objects) > max_objects:
            raise ValueError(
                f"scenes[{i}] holds {len(scene.objects)} objects, more than "
                f"max_objects={max_objects}"
            )
        for j, obj in enumerate(scene.objects):
            labels[i, j] = SHAPES.index(obj.shape)
            boxes[i, j] = torch.tensor(obj.box, dtype=torch.float32) / size
    return labels, boxes
