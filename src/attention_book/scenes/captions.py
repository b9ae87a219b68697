"""Captioning scenes: two objects and where one sits relative to the other, in words."""

from __future__ import annotations

from .. import _validate
from ..data import Vocab
from .canvas import COLOURS, RELATIONS, SHAPES, Scene, SceneObject, Seed, _rng, random_scenes

__all__ = ["caption", "caption_scenes", "caption_vocab", "relation"]


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
