"""Tests of attention_book.efficient.triton_flash: the Triton kernels against PyTorch's SDPA.

On the CPU the kernels run in Triton's interpreter. Triton chooses it when it is imported
(``triton.jit`` reads ``TRITON_INTERPRET`` as it decorates ``tl.max`` and the other helpers),
so this module sets the variable while it imports triton and the kernels, and during each of
its tests (triton imports more of itself on first use); nothing else in the tests imports it.
The behaviour without the interpreter, or without triton, is checked in a separate process.
The interpreter is slow: small N, d = 16 to 32.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from attention_book import efficient
from attention_book.efficient import triton_available, triton_flash, triton_flash_attention

_IMPORTED_BEFORE = "triton" in sys.modules
_SET_BEFORE = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: see the docstring
try:
    pytest.importorskip("triton", reason="triton is not installed (Linux: pip install triton)")
    importlib.import_module("attention_book.efficient._triton_kernels")  # interpreted, too
finally:  # the choice is made: leave the environment of the other tests as it was
    if _SET_BEFORE is None:
        del os.environ["TRITON_INTERPRET"]
    else:
        os.environ["TRITON_INTERPRET"] = _SET_BEFORE


@pytest.fixture(autouse=True)
def _interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # triton imports some modules on first use
    if not triton_flash._interpreting():
        pytest.fail(
            "triton was imported without TRITON_INTERPRET=1 before this module set it "
            f"(already imported: {_IMPORTED_BEFORE}); run this file on its own"
        )


def _qkv(lead, n, m, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(*lead, length, d, generator=g).requires_grad_() for length in (n, m, m)
    )


def _reference(q, k, v, causal, scale):
    """SDPA in float64, with the causal mask of queries that are the last N of M positions."""
    n, m = q.shape[-2], k.shape[-2]
    mask = torch.ones(n, m, dtype=torch.bool).tril(m - n) if causal else None
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    out = F.scaled_dot_product_attention(q64, k64, v64, attn_mask=mask, scale=scale)
    return out, (q64, k64, v64)


CASES = [  # leading dims, N, M, d, causal, scale
    ((1, 2), 37, 53, 16, False, None),  # ragged: neither N nor M a multiple of the block
    ((1, 2), 37, 100, 16, True, None),  # two key blocks; queries are the last 37 of 100
    ((2, 1), 70, 70, 32, True, 0.3),  # two query blocks, N = M, a scale
    ((3,), 20, 9, 24, False, None),  # N > M, d not a power of two, (..., N, d)
]


@pytest.mark.parametrize(("lead", "n", "m", "d", "causal", "scale"), CASES)
def test_forward_and_gradients_match_sdpa(lead, n, m, d, causal, scale):
    q, k, v = _qkv(lead, n, m, d)
    out = triton_flash_attention(q, k, v, causal=causal, scale=scale)
    ref, inputs = _reference(q, k, v, causal, scale)
    assert out.shape == (*lead, n, d) and out.dtype == torch.float32
    assert (out.double() - ref).abs().max() < 1e-5
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(out, (q, k, v), grad)
    expected = torch.autograd.grad(ref, inputs, grad.double())
    for name, got, want in zip("qkv", grads, expected, strict=True):
        assert got.shape == want.shape
        assert (got.double() - want).abs().max() < 1e-4, f"d{name}"


def test_large_scores_do_not_overflow():
    q, k, v = (x.detach() for x in _qkv((1, 1), 33, 40, 16, seed=2))
    out = triton_flash_attention(q * 30, k * 30, v)  # scores in the thousands
    ref, _ = _reference(q * 30, k * 30, v, False, None)
    # float32 scores of size 1e3 carry rounding of 1e-4 into the exponent: a looser bound
    assert torch.isfinite(out).all() and (out.double() - ref).abs().max() < 1e-3


def test_it_is_the_package_function():
    assert efficient.triton_flash_attention is triton_flash_attention
    assert triton_available() is True


def test_missing_triton_gives_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)  # what `import triton` sees when missing
    assert triton_available() is False
    q, k, v = _qkv((1,), 8, 8, 16)
    with pytest.raises(ImportError, match=r'pip install "attention-book\[triton\]"'):
        triton_flash_attention(q, k, v)


def test_without_triton_or_without_the_interpreter_the_errors_say_what_to_do():
    code = """
import sys
sys.modules["triton"] = None  # as if it were not installed
import torch
from attention_book import efficient
assert not efficient.triton_available()
q = torch.randn(1, 8, 16)
try:
    efficient.triton_flash_attention(q, q, q)
except ImportError as error:
    assert 'pip install "attention-book[triton]"' in str(error), error
else:
    raise AssertionError("no ImportError")
assert "attention_book.efficient._triton_kernels" not in sys.modules
del sys.modules["triton"]  # now it is there, but not in its interpreter
assert efficient.triton_available()
try:
    efficient.triton_flash_attention(q, q, q)
except RuntimeError as error:
    assert "TRITON_INTERPRET=1" in str(error), error
else:
    raise AssertionError("no RuntimeError")
"""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, env=env)


def _bad(**change):
    args = dict(zip("qkv", _qkv((1, 2), 8, 8, 16), strict=True))
    args.update(change)
    return args


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (_bad(k=torch.randn(1, 2, 16, 8).transpose(-2, -1)), ValueError, "k must be contiguous"),
        (_bad(q=torch.randn(8)), ValueError, "q must have at least 2"),
        (_bad(k=torch.randn(1, 3, 8, 16)), ValueError, "k must be"),
        (_bad(v=torch.randn(1, 2, 8, 32)), ValueError, r"v must be \(\.\.\., M, d\)"),
        (
            {name: torch.randn(1, 2, 8, 16).double() for name in "qkv"},
            TypeError,
            "must be float32, float16 or bfloat16, got torch.float64",
        ),
        (_bad(q=torch.ones(1, 2, 8, 16, dtype=torch.int64)), TypeError, "q must have a float"),
        (_bad(q=torch.randn(1, 2, 8, 16).half()), TypeError, "share one dtype"),
        (_bad(causal=1), TypeError, "causal must be a bool"),
        (_bad(q=torch.randn(1, 2, 9, 16), causal=True), ValueError, "N <= M"),
        (_bad(scale=-1.0), ValueError, "scale must be"),
    ],
)
def test_bad_input_is_named(args, error, match):
    with pytest.raises(error, match=match):
        triton_flash_attention(**args)


def test_too_large_d_and_half_precision_on_cpu_are_refused():
    big = torch.randn(1, 1, 4, 256)
    with pytest.raises(ValueError, match="d must be at most 128.*d=256"):
        triton_flash_attention(big, big, big)
    half = torch.randn(1, 1, 4, 16).half()
    with pytest.raises(TypeError, match="on the CPU.*float32"):
        triton_flash_attention(half, half, half)


def test_tiles_that_do_not_fit_on_the_gpu_are_halved():
    from triton.runtime.errors import OutOfResources

    launched, refused = [], []

    class Kernel:  # a kernel whose 64-row tiles need more shared memory than the GPU has
        def __getitem__(self, grid):
            def launch(*args, BLOCK_M, BLOCK_N, num_stages, **options):
                if BLOCK_M > 32:
                    refused.append(BLOCK_M)
                    raise OutOfResources(98304, 65536, "shared memory")
                launched.append((grid, BLOCK_M, BLOCK_N, num_stages))

            return launch

    x = torch.zeros(6, 100, 64)  # (BH, N, d)
    kernel = Kernel()
    triton_flash._launch(kernel, 100, x, BLOCK_D=64)
    triton_flash._launch(kernel, 100, x, BLOCK_D=64)  # remembered: no second failure
    assert launched == [((4, 6), 32, 32, 2)] * 2 and refused == [64]
