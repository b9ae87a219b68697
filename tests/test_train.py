import pytest
import torch
from torch import nn

from attention_book import seed_everything
from attention_book.train import History, train


def line_data(n=256):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[2.0], [-1.0], [0.5]]) + 0.3
    return x, y


def test_loss_falls_and_history_has_one_entry_per_epoch():
    seed_everything(0)
    model = nn.Linear(3, 1)
    x, y = line_data()
    history = train(model, (x, y), nn.functional.mse_loss, epochs=30, lr=0.05, progress=False)
    assert isinstance(history, History)
    assert len(history.loss) == 30
    assert history.steps == 30 * 4  # 256 examples in batches of 64
    assert history.loss[-1] < 0.01 * history.loss[0]
    assert not model.training


def test_eval_fn_is_recorded_without_gradients_in_eval_mode():
    seen = []

    def eval_fn(model):
        seen.append((model.training, torch.is_grad_enabled()))
        return {"const": 1.5}

    x, y = line_data(32)
    history = train(
        nn.Linear(3, 1), (x, y), nn.functional.mse_loss, epochs=3, eval_fn=eval_fn, progress=False
    )
    assert history.metrics == {"const": [1.5, 1.5, 1.5]}
    assert seen == [(False, False)] * 3


def test_same_generator_same_run():
    def run():
        g = seed_everything(1)
        model = nn.Linear(3, 1)
        return train(
            model, line_data(), nn.functional.mse_loss, epochs=3, generator=g, progress=False
        ).loss

    assert run() == run()


def test_progress_bar_shows_no_timing(capsys):
    x, y = line_data(16)
    train(nn.Linear(3, 1), (x, y), nn.functional.mse_loss, epochs=2, desc="fit")
    err = capsys.readouterr().err
    assert "fit: 100%" in err and "2/2 epochs" in err and "loss=" in err
    assert "it/s" not in err and "00:" not in err  # no elapsed time or rate: outputs stay stable


def test_accepts_a_dataset_and_multiple_inputs():
    class Add(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, a, b):
            return self.w * (a + b)

    a, b = torch.randn(40), torch.randn(40)
    data = torch.utils.data.TensorDataset(a, b, 3 * (a + b))
    model = Add()
    train(model, data, nn.functional.mse_loss, epochs=60, lr=0.1, batch_size=8, progress=False)
    assert abs(model.w.item() - 3.0) < 0.05


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"epochs": 0}, ValueError, "epochs must be > 0, got 0"),
        ({"epochs": 2.0}, TypeError, "epochs must be an int, got float"),
        ({"epochs": 1, "batch_size": -4}, ValueError, "batch_size must be > 0, got -4"),
        ({"epochs": 1, "lr": 0.0}, ValueError, "lr must be a finite number > 0, got 0.0"),
    ],
)
def test_rejects_bad_settings(kwargs, error, message):
    x, y = line_data(8)
    with pytest.raises(error, match=message):
        train(nn.Linear(3, 1), (x, y), nn.functional.mse_loss, progress=False, **kwargs)


def test_rejects_bad_data_and_model():
    x, y = line_data(8)
    with pytest.raises(
        ValueError, match=r"share their first dimension, got shapes \[\(8, 3\), \(7, 1\)\]"
    ):
        train(nn.Linear(3, 1), (x, y[:7]), nn.functional.mse_loss, epochs=1)
    with pytest.raises(ValueError, match="at least \\(inputs, target\\), got 1"):
        train(nn.Linear(3, 1), (x,), nn.functional.mse_loss, epochs=1)
    with pytest.raises(TypeError, match="data\\[1\\] must be a torch.Tensor, got list"):
        train(nn.Linear(3, 1), (x, [1.0] * 8), nn.functional.mse_loss, epochs=1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        train(lambda t: t, (x, y), nn.functional.mse_loss, epochs=1)
    frozen = nn.Linear(3, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train(frozen, (x, y), nn.functional.mse_loss, epochs=1)


@pytest.mark.parametrize(("warmup", "first_step"), [(0, 0.1), (1, 0.1), (4, 0.025)])
def test_warmup_scales_the_first_steps(warmup, first_step):
    # Adam's first update moves every weight by lr (times the sign of its gradient)
    x, y = line_data(8)
    model = nn.Linear(3, 1)
    before = model.weight.detach().clone()
    train(
        model,
        (x, y),
        nn.functional.mse_loss,
        epochs=1,
        lr=0.1,
        batch_size=8,
        warmup=warmup,
        progress=False,
    )
    moved = (model.weight.detach() - before).abs()
    torch.testing.assert_close(moved, torch.full_like(moved, first_step), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("warmup", [-1, 2.5, True])
def test_rejects_bad_warmup(warmup):
    x, y = line_data(8)
    with pytest.raises(ValueError, match="warmup must be an int >= 0"):
        train(
            nn.Linear(3, 1), (x, y), nn.functional.mse_loss, epochs=1, warmup=warmup, progress=False
        )


def test_decay_lowers_the_learning_rate_linearly_to_zero():
    # Adam's first update moves every weight by the current lr; the last one by lr / n
    x, y = line_data(32)
    model = nn.Linear(3, 1)
    steps = []
    original_step = torch.optim.Adam.step

    def record(self, *args, **kwargs):
        steps.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    torch.optim.Adam.step = record
    try:
        train(model, (x, y), nn.functional.mse_loss, epochs=2, lr=0.1, batch_size=8,
              decay=True, progress=False)  # fmt: skip
    finally:
        torch.optim.Adam.step = original_step
    torch.testing.assert_close(steps, [0.1 * (1 - t / 8) for t in range(8)])


def test_clip_norm_limits_each_update():
    x, y = line_data(8)
    y = y * 1e6  # a huge gradient
    model = nn.Linear(3, 1)
    grads = []
    model.weight.register_hook(lambda g: grads.append(g.norm().item()))
    train(model, (x, y), nn.functional.mse_loss, epochs=1, batch_size=8, clip_norm=0.5,
          progress=False)  # fmt: skip
    assert grads[0] > 1e3  # before clipping...
    total = torch.cat([model.weight.grad.flatten(), model.bias.grad]).norm().item()
    assert total == pytest.approx(0.5, rel=1e-5)  # ...and after
    with pytest.raises(ValueError, match="clip_norm must be a finite number > 0"):
        train(model, (x, y), nn.functional.mse_loss, epochs=1, clip_norm=0.0, progress=False)


def test_ready_made_batches_are_each_one_step():
    x, y = line_data(24)
    batches = [(x[:8], y[:8]), (x[8:20], y[8:20]), (x[20:], y[20:])]
    history = train(nn.Linear(3, 1), batches, nn.functional.mse_loss, epochs=2, batch_size=None,
                    progress=False)  # fmt: skip
    assert history.steps == 6
    with pytest.raises(ValueError, match="batch_size=None needs data as a list of batches"):
        train(nn.Linear(3, 1), (x, y), nn.functional.mse_loss, epochs=1, batch_size=None)


@pytest.mark.parametrize("n, batch_size", [(256, 64), (250, 64), (10, 64), (7, 1)])
@pytest.mark.parametrize("with_generator", [True, False])
def test_tensor_batches_are_the_dataloaders_bit_for_bit(n, batch_size, with_generator):
    """train cuts tensor data by indexing; it must give DataLoader's batches, in DataLoader's
    order, and leave every generator where DataLoader leaves it, or every stored run changes."""
    from torch.utils.data import DataLoader, TensorDataset

    from attention_book.train import _ShuffledBatches

    g = torch.Generator().manual_seed(0)
    tensors = (torch.randn(n, 2, 3, generator=g), torch.randint(0, 5, (n,), generator=g))

    def epochs(make):
        seed_everything(3)
        generator = torch.Generator().manual_seed(7) if with_generator else None
        loader = make(generator)
        batches = [[t.clone() for t in batch] for _ in range(3) for batch in loader]
        after = [torch.rand(2).tolist()]  # where the global generator stands
        if generator is not None:
            after.append(torch.rand(2, generator=generator).tolist())
        return len(loader), batches, after

    ours = epochs(lambda gen: _ShuffledBatches(tensors, batch_size, gen))
    theirs = epochs(
        lambda gen: DataLoader(
            TensorDataset(*tensors), batch_size=batch_size, shuffle=True, generator=gen
        )
    )
    assert ours[0] == theirs[0]
    assert ours[2] == theirs[2]
    assert len(ours[1]) == len(theirs[1])
    for mine, reference in zip(ours[1], theirs[1], strict=True):
        assert all(torch.equal(a, b) for a, b in zip(mine, reference, strict=True))


def test_a_dataset_subclass_fetches_its_own_examples():
    from torch.utils.data import TensorDataset

    class Flipped(TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return -x, y

    class Recording(nn.Linear):
        def forward(self, x):
            seen.append(x)
            return super().forward(x)

    x, y = line_data(64)
    seen = []
    train(Recording(3, 1), Flipped(x, y), nn.functional.mse_loss, epochs=1, progress=False)
    assert len(seen) == 1
    assert torch.allclose(seen[0].sum(0), -x.sum(0), atol=1e-5)  # the flipped examples
