"""The canvas: coloured shapes placed apart on a white image, and random scenes of them.

A scene is a ``(3, H, W)`` image in ``[0, 1]`` and the list of objects drawn on it, each a
shape, a colour name and a bounding box ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1``
exclusive. The data sets of :mod:`attention_book.scenes` are drawn from these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .. import _validate

__all__ = [
    "COLOURS",
    "GREY",
    "RELATIONS",
    "SHAPES",
    "Scene",
    "SceneObject",
    "random_scenes",
    "stack_images",
]

# The constants are documented (#:) where the reader finds them: attention_book.scenes.
# The colours objects may have, by name, as RGB in [0, 1]; the order decides who is named first.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "green": (0.10, 0.60, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "yellow": (0.90, 0.75, 0.05),
}
# The colour of the distractors, as RGB.
GREY = (0.55, 0.55, 0.55)
# The shapes a scene can hold; a label is an index into this tuple.
SHAPES = ("circle", "square", "triangle")
# How one object can sit relative to another, as the words of a caption.
RELATIONS = ("left of", "right of", "above", "below")
_BACKGROUND = 1.0

Seed = int | torch.Generator


@dataclass(frozen=True)
class SceneObject:
    """One shape on the canvas: what it is, its colour and its box in pixels.

    Attributes:
        shape: one of :data:`SHAPES`.
        colour: a key of :data:`COLOURS`, or ``"grey"``.
        box: ``(x0, y0, x1, y1)`` in pixels, ``x1`` and ``y1`` exclusive.

    Introduced in :ref:`sec-captioning`.
    """

    shape: str
    colour: str
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1), x1 and y1 exclusive

    @property
    def centre(self) -> tuple[float, float]:
        """Return the centre ``(x, y)`` of the box, in pixels."""
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass(frozen=True)
class Scene:
    """An image and the objects drawn on it.

    Attributes:
        image: ``(3, H, W)`` float32 RGB in ``[0, 1]``, white background.
        objects: the objects, in the order the data set gives them meaning (e.g. the
            caption's first object first).

    Introduced in :ref:`sec-captioning`.
    """

    image: torch.Tensor  # (3, H, W) float32 in [0, 1]
    objects: tuple[SceneObject, ...]


def _rng(seed: Seed) -> np.random.Generator:
    return np.random.default_rng(_validate.seed(seed))


def _shape_mask(
    shape: str, box: tuple[int, int, int, int], ys: np.ndarray, xs: np.ndarray
) -> np.ndarray:
    """Mark the pixels whose centres ``(ys, xs)`` fall inside the shape."""
    x0, y0, x1, y1 = box
    inside_box = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    if shape == "square":
        return inside_box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    if shape == "circle":
        return inside_box & ((xs - cx) ** 2 + (ys - cy) ** 2 <= (w / 2) ** 2)
    # triangle, apex up: the half-width grows from 0 at the top to w/2 at the bottom
    return inside_box & (np.abs(xs - cx) <= (ys - y0) / h * (w / 2) + 0.25)


def _render(objects: Sequence[SceneObject], size: int) -> torch.Tensor:
    image = np.full((3, size, size), _BACKGROUND, dtype=np.float32)
    ys, xs = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    for obj in objects:
        rgb = GREY if obj.colour == "grey" else COLOURS[obj.colour]
        mask = _shape_mask(obj.shape, obj.box, ys, xs)
        image[:, mask] = np.asarray(rgb, dtype=np.float32)[:, None]
    return torch.from_numpy(image)


def _place(
    rng: np.random.Generator, size: int, sides: list[int], gap: int
) -> list[tuple[int, int, int, int]]:
    """Place squares of the given sides on the canvas, at least ``gap`` pixels apart."""
    for _ in range(20):  # rejection sampling, object by object
        boxes: list[tuple[int, int, int, int]] = []
        for side in sides:
            for _ in range(20):
                x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
                box = (x0, y0, x0 + side, y0 + side)
                if all(_apart(box, other, gap) for other in boxes):
                    boxes.append(box)
                    break
            else:
                break  # this object found no room: start the layout again
        if len(boxes) == len(sides):
            return boxes
    # a crowded canvas: fall back to a grid whose cells hold the largest object
    per_side = (size + gap) // (max(sides) + gap)
    cells = rng.permutation(per_side * per_side)[: len(sides)]
    pitch = (size + gap) / per_side
    boxes = []
    for cell, side in zip(cells, sides, strict=True):
        row, col = divmod(int(cell), per_side)
        slack = int(pitch - gap - side)
        x0 = int(col * pitch) + int(rng.integers(0, slack + 1))
        y0 = int(row * pitch) + int(rng.integers(0, slack + 1))
        boxes.append((x0, y0, x0 + side, y0 + side))
    return boxes


def _apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def random_scenes(
    n: int,
    size: int = 32,
    num_objects: int | tuple[int, int] = 2,
    *,
    min_size: int = 8,
    max_size: int = 12,
    colours: Sequence[str] | None = None,
    shapes: Sequence[str] = SHAPES,
    gap: int = 1,
    seed: Seed = 0,
) -> list[Scene]:
    """Draw ``n`` scenes of randomly placed shapes that do not touch.

    Args:
        n: number of scenes, > 0.
        size: the canvas is ``size`` x ``size`` pixels, > 0.
        num_objects: objects per scene, or an inclusive range ``(low, high)`` to draw from.
        min_size: the smallest object's side in pixels, >= 4.
        max_size: the largest object's side, from ``min_size`` to ``size``.
        colours: the colour names to draw from (keys of :data:`COLOURS`, or ``"grey"``);
            ``None`` means every colour in :data:`COLOURS`.
        shapes: the shapes to draw from, a subset of :data:`SHAPES`.
        gap: the fewest pixels between two objects, >= 0.
        seed: an int or a ``torch.Generator``.

    Returns:
        ``n`` scenes, each with a ``(3, size, size)`` image.

    Raises:
        ValueError: for a canvas too small for the objects asked for, among others.

    Introduced in :ref:`sec-captioning`.
    """
    n = _validate.positive_int("n", n)
    size = _validate.positive_int("size", size)
    low, high = _object_range(num_objects)
    _check_sizes(size, min_size, max_size, gap, high)
    colours = list(COLOURS) if colours is None else list(colours)
    _check_names("colours", colours, [*COLOURS, "grey"])
    _check_names("shapes", list(shapes), list(SHAPES))
    rng = _rng(seed)
    scenes = []
    for _ in range(n):
        count = int(rng.integers(low, high + 1))
        sides = [int(s) for s in rng.integers(min_size, max_size + 1, size=count)]
        boxes = _place(rng, size, sides, gap)
        objects = tuple(
            SceneObject(str(rng.choice(list(shapes))), str(rng.choice(colours)), box)
            for box in boxes
        )
        scenes.append(Scene(_render(objects, size), objects))
    return scenes


def _object_range(num_objects: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(num_objects, tuple):
        if len(num_objects) != 2:
            raise ValueError(f"num_objects must be an int or (low, high), got {num_objects}")
        low = _validate.positive_int("num_objects[0]", num_objects[0])
        high = _validate.positive_int("num_objects[1]", num_objects[1])
        if low > high:
            raise ValueError(f"num_objects must be (low, high) with low <= high, got {num_objects}")
        return low, high
    count = _validate.positive_int("num_objects", num_objects)
    return count, count


def _check_sizes(size: int, min_size: int, max_size: int, gap: int, count: int) -> None:
    min_size = _validate.positive_int("min_size", min_size)
    max_size = _validate.positive_int("max_size", max_size)
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise ValueError(f"gap must be an int >= 0, got {gap!r}")
    if not 4 <= min_size <= max_size <= size:
        raise ValueError(
            "object sizes must satisfy 4 <= min_size <= max_size <= size, got "
            f"min_size={min_size}, max_size={max_size}, size={size}"
        )
    per_side = (size + gap) // (max_size + gap)
    if count > per_side * per_side:
        raise ValueError(
            f"a {size}x{size} canvas is too small for {count} objects of up to {max_size} px "
            f"(gap {gap}): it holds at most {per_side * per_side}; use a larger size, fewer "
            "or smaller objects"
        )


def _check_names(name: str, given: list[str], allowed: list[str]) -> None:
    if not given or any(g not in allowed for g in given):
        raise ValueError(f"{name} must be a non-empty subset of {allowed}, got {given}")


def stack_images(scenes: Sequence[Scene]) -> torch.Tensor:
    """Stack the images of scenes of one size into a batch.

    Args:
        scenes: at least one scene.

    Returns:
        ``(n, 3, size, size)`` float32.

    Introduced in :ref:`sec-captioning`.
    """
    if len(scenes) == 0:
        raise ValueError("scenes must hold at least one scene, got none")
    sizes = {tuple(s.image.shape) for s in scenes}
    if len(sizes) != 1:
        raise ValueError(f"scenes must all have one image size, got {sorted(sizes)}")
    return torch.stack([s.image for s in scenes])
