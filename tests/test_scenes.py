"""Synthetic scenes: seeded, objects apart and inside their boxes, captions that describe them."""

from __future__ import annotations

import pytest
import torch

from attention_book import scenes
from attention_book.data import BOS_ID, EOS_ID, PAD_ID
from attention_book.scenes import COLOURS, SHAPES, Scene, SceneObject


def _pixels(scene: Scene, obj: SceneObject) -> torch.Tensor:
    """Return the mask of pixels that have the object's colour."""
    rgb = torch.tensor(COLOURS[obj.colour] if obj.colour in COLOURS else scenes.GREY)
    return (scene.image - rgb[:, None, None]).abs().amax(dim=0) < 1e-6


def test_same_seed_same_scenes_and_generator_seeds_work():
    a = scenes.random_scenes(5, seed=3)
    b = scenes.random_scenes(5, seed=3)
    c = scenes.random_scenes(5, seed=4)
    assert all(
        torch.equal(x.image, y.image) and x.objects == y.objects for x, y in zip(a, b, strict=True)
    )
    assert any(x.objects != y.objects for x, y in zip(a, c, strict=True))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert (
        scenes.random_scenes(3, seed=g1)[0].objects == scenes.random_scenes(3, seed=g2)[0].objects
    )


def test_objects_are_drawn_inside_their_boxes_and_apart():
    for scene in scenes.random_scenes(30, 32, (1, 3), gap=1, seed=0):
        assert scene.image.shape == (3, 32, 32) and scene.image.dtype == torch.float32
        for i, obj in enumerate(scene.objects):
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 < x1 <= 32 and 0 <= y0 < y1 <= 32
            assert x1 - x0 == y1 - y0 and 8 <= x1 - x0 <= 12
            ys, xs = torch.nonzero(_pixels(scene, obj), as_tuple=True)
            mine = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            assert mine.sum() >= 0.3 * (x1 - x0) ** 2  # the shape fills a good part of its box
            for other in scene.objects[i + 1 :]:
                a, b = obj.box, other.box
                assert a[2] + 1 <= b[0] or b[2] + 1 <= a[0] or a[3] + 1 <= b[1] or b[3] + 1 <= a[1]


def test_shapes_differ_in_area():
    box = (0, 0, 12, 12)
    areas = {}
    for shape in SHAPES:
        scene = scenes.random_scenes(1, 12, 1, min_size=12, max_size=12, shapes=[shape], seed=0)[0]
        areas[shape] = int((scene.image.sum(0) < 3).sum())
        assert scene.objects[0].box == box
    assert areas["square"] == 144 > areas["circle"] > areas["triangle"] > 50


def test_crowded_canvas_still_places_everything():
    # 9 objects of 9 px fit a 29 px canvas only as a grid: the fallback must find it
    (scene,) = scenes.random_scenes(1, 29, 9, min_size=9, max_size=9, gap=1, seed=0)
    assert len(scene.objects) == 9


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 20, "num_objects": 5}, "too small for 5 objects of up to 12 px"),
        ({"num_objects": 0}, "num_objects must be > 0"),
        ({"num_objects": (3, 1)}, r"low <= high, got \(3, 1\)"),
        ({"min_size": 3}, "4 <= min_size <= max_size <= size"),
        ({"min_size": 10, "max_size": 9}, "min_size=10, max_size=9"),
        ({"size": 10}, "max_size=12, size=10"),
        ({"colours": ["purple"]}, "colours must be a non-empty subset"),
        ({"shapes": []}, "shapes must be a non-empty subset"),
        ({"gap": -1}, "gap must be an int >= 0"),
    ],
)
def test_bad_arguments_get_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        scenes.random_scenes(2, **kwargs)


def test_bad_counts_and_seeds():
    with pytest.raises(ValueError, match="n must be > 0, got 0"):
        scenes.random_scenes(0)
    with pytest.raises(TypeError, match="seed must be an int or a torch.Generator"):
        scenes.random_scenes(1, seed=1.5)
    with pytest.raises(ValueError, match="num_distractors must be >= 0"):
        scenes.distractor_scenes(2, num_distractors=-1)
    with pytest.raises(ValueError, match="size must be >= 26"):
        scenes.caption_scenes(2, size=20)


def test_relation_of_boxes():
    def obj(box):
        return SceneObject("square", "red", box)

    centre = obj((10, 10, 20, 20))
    assert scenes.relation(obj((0, 12, 8, 22)), centre) == "left of"
    assert scenes.relation(obj((22, 5, 30, 13)), centre) == "right of"
    assert scenes.relation(obj((12, 0, 20, 8)), centre) == "above"
    assert scenes.relation(centre, obj((12, 0, 20, 8))) == "below"
    assert scenes.relation(obj((0, 0, 8, 8)), centre) is None  # diagonal


def test_captions_name_the_first_colour_first_and_describe_the_scene():
    vocab = scenes.caption_vocab()
    order = list(COLOURS)
    relations = set()
    for scene in scenes.caption_scenes(40, seed=1):
        first, second = scene.objects
        text = scenes.caption(scene)
        words = text.split()
        assert words[:2] == [first.colour, first.shape] and words[-2:] == [
            second.colour,
            second.shape,
        ]
        assert order.index(first.colour) < order.index(second.colour)
        relation = " ".join(words[2:-2])
        assert relation == scenes.relation(first, second)
        relations.add(relation)
        ids = vocab.encode(words)
        assert min(ids) > max(PAD_ID, BOS_ID, EOS_ID) and vocab.decode(ids) == words
    assert relations == set(scenes.RELATIONS)


def test_caption_rejects_scenes_it_cannot_describe():
    same = Scene(
        torch.ones(3, 32, 32),
        (SceneObject("circle", "red", (0, 0, 8, 8)), SceneObject("square", "red", (20, 0, 28, 8))),
    )
    with pytest.raises(ValueError, match="different colours"):
        scenes.caption(same)
    diagonal = Scene(
        torch.ones(3, 32, 32),
        (
            SceneObject("circle", "red", (0, 0, 8, 8)),
            SceneObject("square", "blue", (20, 20, 28, 28)),
        ),
    )
    with pytest.raises(ValueError, match="diagonal"):
        scenes.caption(diagonal)


def test_detection_targets_pad_and_normalise():
    batch = scenes.detection_scenes(20, seed=2)
    labels, boxes = scenes.detection_targets(batch, max_objects=3)
    assert labels.shape == (20, 3) and boxes.shape == (20, 3, 4)
    for i, scene in enumerate(batch):
        k = len(scene.objects)
        assert 1 <= k <= 3 and (labels[i, k:] == -1).all() and (boxes[i, k:] == 0).all()
        for j, obj in enumerate(scene.objects):
            assert SHAPES[labels[i, j]] == obj.shape
            assert torch.allclose(boxes[i, j] * 32, torch.tensor(obj.box, dtype=torch.float32))
    with pytest.raises(ValueError, match="more than max_objects=1"):
        scenes.detection_targets(batch, max_objects=1)


def test_distractor_scenes_label_the_red_target():
    images, labels, batch = scenes.distractor_scenes(10, num_distractors=2, seed=0)
    assert images.shape == (10, 3, 32, 32) and labels.shape == (10,)
    for label, scene in zip(labels, batch, strict=True):
        assert SHAPES[label] == scene.objects[0].shape
        assert [o.colour for o in scene.objects] == ["red", "grey", "grey"]
