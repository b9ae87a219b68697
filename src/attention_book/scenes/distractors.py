"""Distractor scenes: one red target shape among grey ones, labelled by the target's shape."""

from __future__ import annotations

import torch

from .. import _validate
from .canvas import SHAPES, Scene, SceneObject, Seed, _render, _rng, random_scenes, stack_images

__all__ = ["distractor_scenes"]


def distractor_scenes(
    n: int, size: int = 32, num_distractors: int = 4, seed: Seed = 0
) -> tuple[torch.Tensor, torch.Tensor, list[Scene]]:
    """Draw ``n`` scenes of one red target shape among grey distractors, labelled by its shape.

    The objects are 6 to 9 pixels wide; the target is the first object of each scene.

    Args:
        n: number of scenes, > 0.
        size: the canvas side in pixels.
        num_distractors: grey shapes per scene, >= 0.
        seed: an int or a ``torch.Generator``.

    Returns:
        ``(images, labels, scenes)``: ``images`` ``(n, 3, size, size)``, ``labels`` ``(n,)``
        long, the index of the target's shape in :data:`SHAPES`, and the scenes.

    Introduced in :ref:`sec-channel-spatial`.
    """
    if isinstance(num_distractors, bool) or not isinstance(num_distractors, int):
        raise TypeError(f"num_distractors must be an int, got {type(num_distractors).__name__}")
    if num_distractors < 0:
        raise ValueError(f"num_distractors must be >= 0, got {num_distractors}")
    size = _validate.positive_int("size", size)
    drawn = random_scenes(
        n,
        size,
        num_distractors + 1,
        min_size=6,
        max_size=9,
        colours=["grey"],
        seed=int(_rng(seed).integers(2**62)),
    )
    colours = ["red"] + ["grey"] * num_distractors
    scenes = []
    for scene in drawn:
        objects = tuple(
            SceneObject(o.shape, c, o.box) for o, c in zip(scene.objects, colours, strict=True)
        )
        scenes.append(Scene(_render(objects, size), objects))
    labels = torch.tensor([SHAPES.index(s.objects[0].shape) for s in scenes])
    return stack_images(scenes), labels, scenes
