"""Seeded synthetic scenes for the vision chapter: coloured shapes on a white canvas.

A scene is a ``(3, H, W)`` image in ``[0, 1]`` and the list of objects drawn on it, each a
shape (circle, square, triangle), a colour name and a bounding box ``(x0, y0, x1, y1)`` in
pixels (``x1`` and ``y1`` exclusive: the box of a 10-pixel square at the origin is
``(0, 0, 10, 10)``). Objects never touch. Three data sets are built from scenes:

- **captioning**: two objects of different colours side by side or one above the other,
  described as ``"red circle left of blue square"`` (the object whose colour comes first in
  :data:`COLOURS` is named first);
- **detection**: one to three objects; the targets are their shapes and boxes;
- **distractors**: one red object among grey ones; the label is the red object's shape.

Every function takes a ``seed`` (an int or a ``torch.Generator``): the same seed gives the
same scenes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import _validate
from .data import Vocab

__all__ = [
    "COLOURS",
    "GREY",
    "RELATIONS",
    "SHAPES",
    "Scene",
    "SceneObject",
    "caption",
    "caption_scenes",
    "caption_vocab",
    "detection_scenes",
    "detection_targets",
    "distractor_scenes",
    "random_scenes",
    "relation",
    "stack_images",
]

#: The colours objects may have, by name, as RGB in [0, 1]; the order decides who is named first.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "green": (0.10, 0.60, 0.20),
    "blue": (0.15, 0.30, 0.90),
    "yellow": (0.90, 0.75, 0.05),
}
#: The colour of the distractors, as RGB.
GREY = (0.55, 0.55, 0.55)
#: The shapes a scene can hold; a label is an index into this tuple.
SHAPES = ("circle", "square", "triangle")
#: How one object can sit relative to another, as the words of a caption.
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


def relation(a: SceneObject, b: SceneObject) -> str | None:
    """Say where ``a`` is relative to ``b``: one of :data:`RELATIONS`, or ``None``.

    ``a`` is "left of" ``b`` when its box ends before ``b``'s begins and the two boxes share
    some rows; "above" likewise with columns. Objects apart on both axes (diagonal) or
    overlapping on both have no single relation, and give ``None``.

    Args:
        a: the object being described.
        b: the object it is described relative to.

    Returns:
        ``"left of"``, ``"right of"``, ``"above"``, ``"below"`` or ``None``.

    Introduced in :ref:`sec-captioning`.
    """
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    apart_x = ax1 <= bx0 or bx1 <= ax0
    apart_y = ay1 <= by0 or by1 <= ay0
    if apart_x == apart_y:
        return None
    if apart_x:
        return "left of" if ax1 <= bx0 else "right of"
    return "above" if ay1 <= by0 else "below"


def caption(scene: Scene) -> str:
    """Describe a two-object scene, e.g. ``"red circle left of blue square"``.

    The object whose colour comes first in :data:`COLOURS` is named first, so every scene
    has exactly one caption.

    Args:
        scene: a scene with two objects of different colours and a clear relation.

    Returns:
        The caption, such as ``"red circle left of blue square"``.

    Introduced in :ref:`sec-captioning`.
    """
    first, second = _caption_order(scene)
    where = relation(first, second)
    if where is None:
        raise ValueError(
            f"the objects at {first.box} and {second.box} are diagonal to each other (or "
            "overlap): no single relation describes them"
        )
    return f"{first.colour} {first.shape} {where} {second.colour} {second.shape}"


def _caption_order(scene: Scene) -> tuple[SceneObject, SceneObject]:
    if len(scene.objects) != 2:
        raise ValueError(f"scene must hold two objects, got {len(scene.objects)}")
    a, b = scene.objects
    order = list(COLOURS)
    if a.colour == b.colour or a.colour not in order or b.colour not in order:
        raise ValueError(f"scene must hold two objects of different colours, got {a} and {b}")
    return (a, b) if order.index(a.colour) < order.index(b.colour) else (b, a)


def caption_scenes(n: int, size: int = 32, seed: Seed = 0) -> list[Scene]:
    """Draw ``n`` captionable scenes: two objects of different colours, beside or above.

    The objects are 8 to 12 pixels wide, at least 2 pixels apart; the first object of each
    scene is the one its caption names first.

    Args:
        n: number of scenes, > 0.
        size: the canvas side in pixels, >= 26 (two 12-pixel objects and the gap).
        seed: an int or a ``torch.Generator``.

    Returns:
        ``n`` scenes; :func:`caption` describes each.

    Introduced in :ref:`sec-captioning`.
    """
    n = _validate.positive_int("n", n)
    size = _validate.positive_int("size", size)
    if size < 26:
        raise ValueError(
            f"size must be >= 26 to hold two 12-pixel objects side by side, got {size}"
        )
    rng = _rng(seed)
    scenes: list[Scene] = []
    while len(scenes) < n:
        (candidate,) = random_scenes(1, size, 2, gap=2, seed=int(rng.integers(2**62)))
        a, b = candidate.objects
        if a.colour == b.colour:
            continue
        first, second = _caption_order(candidate)
        if relation(first, second) is not None:
            scenes.append(Scene(candidate.image, (first, second)))
    return scenes


def caption_vocab() -> Vocab:
    """Build the word vocabulary of the captions: colours, shapes and relation words.

    Returns:
        A :class:`attention_book.data.Vocab` (PAD, BOS and EOS at ids 0, 1, 2).

    Introduced in :ref:`sec-captioning`.
    """
    words = [*COLOURS, *SHAPES]
    for phrase in RELATIONS:
        words += [w for w in phrase.split() if w not in words]
    return Vocab(words)


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
