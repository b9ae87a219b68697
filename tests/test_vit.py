"""The Vision Transformer pieces: patches, patch embedding, the model, data, distances."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from attention_book.models import vit


def loop_patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """The definition, one patch at a time: reading order, each patch flattened (C, p, p)."""
    b, _, h, w = images.shape
    rows = [
        images[:, :, i : i + p, j : j + p].reshape(b, -1)
        for i in range(0, h, p)
        for j in range(0, w, p)
    ]
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize(("shape", "p"), [((2, 1, 8, 8), 2), ((3, 3, 6, 10), 2), ((1, 2, 8, 4), 4)])
def test_patchify_matches_the_loop_and_unfold(shape, p):
    images = torch.randn(*shape)
    patches = vit.patchify(images, p)
    b, c, h, w = shape
    assert patches.shape == (b, (h // p) * (w // p), c * p * p)
    assert torch.equal(patches, loop_patchify(images, p))
    assert torch.equal(patches, F.unfold(images, kernel_size=p, stride=p).transpose(1, 2))


def test_unpatchify_inverts_patchify():
    images = torch.randn(2, 3, 6, 10)
    patches = vit.patchify(images, 2)
    assert torch.equal(vit.unpatchify(patches, (6, 10), 2, 3), images)
    square = torch.randn(4, 1, 8, 8)
    assert torch.equal(vit.unpatchify(vit.patchify(square, 4), 8, 4, 1), square)


def test_patchify_rejects_bad_input():
    with pytest.raises(ValueError, match=r"image size 8 x 6 is not divisible by patch_size=4"):
        vit.patchify(torch.zeros(1, 1, 8, 6), 4)
    with pytest.raises(ValueError, match=r"images must be \(B, C, H, W\), got shape \(8, 8\)"):
        vit.patchify(torch.zeros(8, 8), 2)
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        vit.patchify([[0.0]], 2)
    with pytest.raises(ValueError, match="patch_size must be > 0"):
        vit.patchify(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match=r"patches must be \(B, 16, 4\) .* got shape \(2, 16, 8\)"):
        vit.unpatchify(torch.zeros(2, 16, 8), 8, 2, 1)
    with pytest.raises(ValueError, match="image size 9 x 9 is not divisible by patch_size=2"):
        vit.unpatchify(torch.zeros(2, 16, 4), 9, 2, 1)
    with pytest.raises(ValueError, match="image_size must be a positive int or a pair"):
        vit.unpatchify(torch.zeros(2, 16, 4), (8, 8, 8), 2, 1)


def test_patch_embedding_is_a_strided_convolution():
    torch.manual_seed(0)
    embed = vit.PatchEmbedding(in_channels=3, patch_size=2, d_model=5)
    images = torch.randn(2, 3, 6, 4)
    conv = embed.as_conv()
    from_conv = conv(images).flatten(2).transpose(1, 2)  # (B, N, d_model)
    assert torch.allclose(embed(images), from_conv, atol=1e-6)
    with pytest.raises(ValueError, match=r"must have 3 channel\(s\), got shape \(2, 1, 6, 4\)"):
        embed(torch.randn(2, 1, 6, 4))


def test_vit_shapes_and_attention_weights():
    torch.manual_seed(0)
    model = vit.ViT(8, 2, num_classes=10, d_model=16, num_heads=2, num_layers=3, d_ff=32)
    assert model.grid == (4, 4) and model.num_patches == 16
    logits = model(torch.rand(5, 1, 8, 8))
    assert logits.shape == (5, 10)
    weights = model.attention_weights()
    assert weights.shape == (3, 5, 2, 17, 17)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 5, 2, 17))
    with pytest.raises(ValueError, match=r"images must be 8 x 8, got shape \(1, 1, 6, 6\)"):
        model(torch.rand(1, 1, 6, 6))
    with pytest.raises(ValueError, match="image size 8 x 8 is not divisible by patch_size=3"):
        vit.ViT(8, 3, num_classes=10)
    with pytest.raises(ValueError, match="positions must be '1d', '2d' or 'none', got 'abs'"):
        vit.ViT(8, 2, num_classes=10, positions="abs")  # type: ignore[arg-type]


def test_vit_position_embeddings():
    torch.manual_seed(0)
    two_d = vit.ViT((4, 6), 2, num_classes=3, d_model=8, num_heads=2)
    table = two_d.position_embeddings()
    assert table.shape == (1 + 2 * 3, 8)
    # token 1 + 3 r + c gets row r's vector plus column c's
    assert torch.allclose(table[1 + 3 * 1 + 2], two_d.row_embed[1] + two_d.col_embed[2])
    one_d = vit.ViT(8, 4, num_classes=3, d_model=8, num_heads=2, positions="1d")
    assert one_d.position_embeddings().shape == (5, 8)
    without = vit.ViT(8, 4, 3, d_model=8, num_heads=2, positions="none")
    extra = sum(p.numel() for p in one_d.parameters()) - sum(
        p.numel() for p in without.parameters()
    )
    assert extra == 5 * 8  # one learned vector per token


def test_without_positions_the_vit_sees_a_bag_of_patches():
    torch.manual_seed(0)
    images = torch.rand(3, 1, 8, 8)
    perm = torch.randperm(16)
    shuffled = vit.unpatchify(vit.patchify(images, 2)[:, perm], 8, 2, 1)
    bag = vit.ViT(8, 2, num_classes=10, d_model=16, num_heads=2, positions="none")
    assert torch.allclose(bag(images), bag(shuffled), atol=1e-5)
    placed = vit.ViT(8, 2, num_classes=10, d_model=16, num_heads=2, positions="2d")
    with torch.no_grad():
        placed.row_embed.normal_()
        placed.col_embed.normal_()
    assert not torch.allclose(placed(images), placed(shuffled), atol=1e-3)


def test_small_cnn_and_accuracy():
    torch.manual_seed(0)
    cnn = vit.SmallCNN(width=8)
    with pytest.raises(ValueError, match=r"images must be 8 x 8, got shape \(1, 1, 4, 4\)"):
        cnn(torch.rand(1, 1, 4, 4))
    assert cnn(torch.rand(4, 1, 8, 8)).shape == (4, 10)

    class Oracle(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return F.one_hot(x[:, 0, 0, 0].long(), 3).float()

    images = torch.tensor([0.0, 1.0, 2.0, 1.0]).reshape(4, 1, 1, 1)
    assert vit.accuracy(Oracle(), images, torch.tensor([0, 1, 2, 1])) == 1.0
    assert vit.accuracy(Oracle(), images, torch.tensor([0, 1, 0, 0])) == 0.5
    with pytest.raises(ValueError, match=r"labels must be \(4,\)"):
        vit.accuracy(Oracle(), images, torch.tensor([0, 1]))


def test_load_digits_split_is_seeded_stratified_and_disjoint():
    split = vit.load_digits_split(test_fraction=0.25, seed=0)
    x_train, y_train, x_test, y_test = split
    assert x_train.shape == (1347, 1, 8, 8) and x_test.shape == (450, 1, 8, 8)
    assert x_train.dtype == torch.float32 and y_train.dtype == torch.long
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    overall = torch.bincount(torch.cat([y_train, y_test])) / 1797
    assert (torch.bincount(y_test) / 450 - overall).abs().max() < 0.003  # stratified
    again = vit.load_digits_split(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(split, again, strict=True))
    other = vit.load_digits_split(seed=1)
    assert not torch.equal(other.y_test, y_test)
    train_set = {tuple(x.flatten().tolist()) for x in x_train}
    overlap = sum(tuple(x.flatten().tolist()) in train_set for x in x_test)
    assert overlap <= 2  # a couple of the 1,797 scans are pixel-identical duplicates
    with pytest.raises(ValueError, match=r"test_fraction must lie in \(0, 1\), got 1.5"):
        vit.load_digits_split(test_fraction=1.5)


def test_train_classifier_and_the_chapter_recipe(monkeypatch):
    torch.manual_seed(0)
    split = vit.load_digits_split()
    model = vit.SmallCNN(width=4)
    history = vit.train_classifier(
        model, split.x_train[:256], split.y_train[:256], epochs=3, lr=1e-2, progress=False
    )
    assert len(history.loss) == 3 and history.loss[-1] < history.loss[0]
    monkeypatch.setitem(vit.DIGITS_TRAINING, "epochs", 2)
    small = vit.DigitsSplit(split.x_train[:128], split.y_train[:128], split.x_test, split.y_test)
    first, _ = vit.train_digits_vit(seed=3, split=small, progress=False)
    second, hist = vit.train_digits_vit(seed=3, split=small, progress=False)
    assert len(hist.loss) == 2 and hist.steps == 4 and not first.training
    pairs = zip(first.parameters(), second.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert first.patch_size == vit.DIGITS_VIT["patch_size"]
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 1\), got 1.0"):
        vit.train_classifier(model, split.x_train, split.y_train, epochs=3, label_smoothing=1.0)


def test_mean_attention_distance():
    grid = (2, 3)
    n = 6
    assert torch.allclose(vit.mean_attention_distance(torch.eye(n), grid), torch.tensor(0.0))
    # every patch looks one step to the right (the last column looks left): distance 1
    right = torch.zeros(n, n)
    for i in range(n):
        r, c = divmod(i, 3)
        right[i, r * 3 + (c + 1 if c < 2 else c - 1)] = 1.0
    assert torch.allclose(vit.mean_attention_distance(right, grid), torch.tensor(1.0))
    assert torch.allclose(vit.mean_attention_distance(right, grid, patch_size=4), torch.tensor(4.0))
    # uniform weights: the mean of all pairwise distances, diagonals included
    centres = torch.tensor([[r, c] for r in range(2) for c in range(3)], dtype=torch.float32)
    pairwise = torch.cdist(centres, centres).mean()
    uniform = torch.full((n, n), 1 / n)
    assert torch.allclose(vit.mean_attention_distance(uniform, grid), pairwise)
    # the diagonal step of a 2 x 2 grid is sqrt(2) patches, not 2
    anti = torch.eye(4).flip(0)
    assert torch.allclose(vit.mean_attention_distance(anti, (2, 2)), torch.tensor(math.sqrt(2)))
    # leading dimensions are kept; a class token in front is dropped and the rest renormalised
    stacked = torch.stack([torch.eye(n), right])[:, None]  # (2, 1, 6, 6)
    assert torch.allclose(vit.mean_attention_distance(stacked, grid), torch.tensor([[0.0], [1.0]]))
    with_cls = torch.zeros(n + 1, n + 1)
    with_cls[:, 0] = 0.5
    with_cls[1:, 1:] = right * 0.5
    with_cls[0, 0] = 1.0
    assert torch.allclose(vit.mean_attention_distance(with_cls, grid), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"weights must be \(\.\.\., 6, 6\) for a 2 x 3 grid"):
        vit.mean_attention_distance(torch.eye(5), grid)
