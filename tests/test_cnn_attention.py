"""Squeeze-and-excitation, spatial attention and the small CNN that uses them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attention_book.models.cnn_attention import (
    AttentionCNN,
    SpatialAttention,
    SqueezeExcitation,
    conv_backbone,
)


def test_squeeze_excitation_matches_the_formula():
    torch.manual_seed(0)
    se = SqueezeExcitation(8, reduction=4)
    x = torch.randn(3, 8, 5, 6)
    squeezed = x.mean(dim=(2, 3))
    hidden = F.relu(squeezed @ se.squeeze.weight.T + se.squeeze.bias)
    gates = torch.sigmoid(hidden @ se.excite.weight.T + se.excite.bias)
    assert se.squeeze.out_features == 2
    assert torch.allclose(se(x), x * gates[:, :, None, None], atol=1e-6)
    assert se.last_weights.shape == (3, 8) and torch.allclose(se.last_weights, gates)


def test_squeeze_excitation_gates_depend_on_the_whole_image_only():
    torch.manual_seed(1)
    se = SqueezeExcitation(4, reduction=2)
    x = torch.randn(1, 4, 6, 6)
    se(x)
    first = se.last_weights.clone()
    se(x.flip(-1).roll(2, dims=-2))  # same channel averages, pixels moved around
    assert torch.allclose(first, se.last_weights, atol=1e-6)


def test_spatial_attention_matches_the_formula_and_pools_over_channels():
    torch.manual_seed(2)
    sa = SpatialAttention(kernel_size=5)
    x = torch.randn(2, 6, 7, 7)
    pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
    gates = torch.sigmoid(F.conv2d(pooled, sa.conv.weight, sa.conv.bias, padding=2))
    assert torch.allclose(sa(x), x * gates, atol=1e-6)
    assert sa.last_map.shape == (2, 1, 7, 7)
    assert ((sa.last_map > 0) & (sa.last_map < 1)).all()
    sa(x[:, torch.randperm(6)])  # permuting the channels changes neither the mean nor the max
    assert torch.allclose(sa.last_map, gates, atol=1e-6)


@pytest.mark.parametrize(
    ("channel", "spatial"), [(False, False), (True, False), (False, True), (True, True)]
)
def test_attention_cnn_variants(channel, spatial):
    torch.manual_seed(0)
    model = AttentionCNN(3, (8, 16, 16), channel=channel, spatial=spatial)
    logits = model(torch.rand(4, 3, 32, 32))
    assert logits.shape == (4, 3)
    kinds = {type(m) for m in model.modules()}
    assert (SqueezeExcitation in kinds) == channel and (SpatialAttention in kinds) == spatial
    if spatial:
        (last,) = model.spatial_maps()
        assert last.shape == (4, 1, 8, 8)
    else:
        with pytest.raises(RuntimeError, match="no spatial attention"):
            model.spatial_maps()


def test_conv_backbone_shapes():
    net = conv_backbone(3, [8, 16, 32], [True, True, False])
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 32, 8, 8)
    with pytest.raises(ValueError, match="of one length, got 2 widths and 1 pool flags"):
        conv_backbone(3, [8, 16], [True])


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"x must be \(B, 8, H, W\), got shape \(2, 4, 3, 3\)"):
        SqueezeExcitation(8)(torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"x must be \(B, C, H, W\), got shape \(4, 3, 3\)"):
        SpatialAttention()(torch.zeros(4, 3, 3))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        SpatialAttention(4)
    with pytest.raises(ValueError, match="channels must be > 0"):
        SqueezeExcitation(0)
    with pytest.raises(ValueError, match=r"images must be \(B, 3, H, W\)"):
        AttentionCNN(3)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(RuntimeError, match="run a forward pass first"):
        AttentionCNN(3, spatial=True).spatial_maps()
