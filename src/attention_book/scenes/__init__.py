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
Each data set has its own module: ``canvas`` (the objects, drawing and
:func:`random_scenes`), ``captions``, ``detection`` and ``distractors``. Import everything
from here: ``from attention_book import scenes``.
"""

from __future__ import annotations

from .._facade import adopt
from . import canvas as _canvas
from .canvas import Scene, SceneObject, random_scenes, stack_images
from .captions import caption, caption_scenes, caption_vocab, relation
from .detection import detection_scenes, detection_targets
from .distractors import distractor_scenes

#: The colours objects may have, by name, as RGB in [0, 1]; the order decides who is named first.
COLOURS = _canvas.COLOURS
#: The colour of the distractors, as RGB.
GREY = _canvas.GREY
#: The shapes a scene can hold; a label is an index into this tuple.
SHAPES = _canvas.SHAPES
#: How one object can sit relative to another, as the words of a caption.
RELATIONS = _canvas.RELATIONS

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

adopt(globals(), __all__)  # document and pickle them under this package
