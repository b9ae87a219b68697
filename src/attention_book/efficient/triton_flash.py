"""FlashAttention as real GPU kernels, written in Triton: forward and backward.

Why tiles. A GPU has a large, slow memory (HBM, tens of GB at a few TB/s) and, on each of its
streaming multiprocessors, a small, fast one (shared memory and registers, a few hundred KB).
Attention written as three operations (scores, softmax, weighted sum) sends the ``N x M``
scores through HBM twice; the arithmetic is cheap next to that traffic. A fused kernel loads a
tile of queries into fast memory once, streams the keys and values past it tile by tile,
merges each tile with the online softmax of :func:`attention_book.efficient.flash_attention`,
and writes only the ``(N, d)`` output and one log-sum-exp per query. The scores never leave the
chip, and the tiles must be small enough to fit on it: 64 queries by 64 keys here, halved
when a GPU's shared memory is too small for them.

The program grid. A Triton kernel is one *program* run many times in parallel, each with its
own ``tl.program_id``. The forward kernel runs on the grid ``(cdiv(N, BLOCK_M), B * H)``:
program ``(i, bh)`` owns queries ``i * BLOCK_M`` to ``(i + 1) * BLOCK_M - 1`` of the pair
``bh = batch * H + head``, and loops over the keys in blocks of ``BLOCK_N`` (FlashAttention-2's
order: queries outside, keys inside, so that no two programs write the same output). Inside a
program, operations act on whole tiles: ``tl.dot`` multiplies a ``(BLOCK_M, d)`` tile by a
``(d, BLOCK_N)`` one on the tensor cores.

Offsets. Triton addresses memory with pointers: ``q_ptr + bh * N * d`` is the first query of
the pair (inputs are contiguous ``(B, H, N, d)``, so each pair is an ``(N, d)`` block), and
``rows[:, None] * d + feats[None, :]``, with ``rows = i * BLOCK_M + tl.arange(0, BLOCK_M)`` and
``feats = tl.arange(0, BLOCK_D)``, is the ``(BLOCK_M, BLOCK_D)`` tile of offsets that
``tl.load`` reads in one go.

Masks for ragged edges. ``N`` and ``M`` need not be multiples of the blocks: the last block
hangs over the end, and ``tl.load(..., mask=rows[:, None] < N, other=0.0)`` reads zeros there
instead of another tensor's memory; ``tl.store`` with the same mask writes nothing there.
Scores of keys past ``M`` (and, with ``causal=True``, of keys in a query's future) are set to
``-inf`` before the softmax, so they get weight zero. ``tl.arange`` needs a power of two, so
``d`` is rounded up to ``BLOCK_D`` (at least 16, the smallest ``tl.dot``) and the extra
features are masked the same way: any ``d`` up to 128 works without padding the tensors.

The backward pass (FlashAttention-2's scheme) recomputes the weights tile by tile from the
stored log-sum-exp instead of keeping them: a small kernel computes ``delta = rowsum(dO * O)``;
a kernel on the grid ``(cdiv(M, BLOCK_N), B * H)`` holds a block of keys and accumulates its
``dK = scale * dS^T Q`` and ``dV = P^T dO`` over the query blocks, with
``dS = P * (dO V^T - delta)``; a kernel on the query grid accumulates ``dQ = scale * dS K``
over the key blocks. Each program writes only its own rows, so no atomics are needed.
:class:`torch.autograd.Function` ties the kernels to autograd.

On a CPU, Triton's interpreter runs the same kernels with NumPy, one program after another
(slow, but exact and good for reading). Triton chooses once per process, when it is
imported: set the environment variable ``TRITON_INTERPRET=1`` before anything imports triton.
The kernels live in ``_triton_kernels.py`` beside this file, imported on the first call, so
that ``import attention_book`` needs no Triton; :func:`triton_available` says whether it is
installed, and ``pip install "attention-book[triton]"`` installs it (Linux only).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
from types import ModuleType
from typing import Any

import torch

from ._common import _check_causal, _check_qkv, _flat, _scale

__all__ = ["triton_available", "triton_flash_attention"]

_INSTALL = 'pip install "attention-book[triton]"  (or: pip install triton; Linux only)'
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MAX_D = 128
_ENV = "TRITON_INTERPRET"  # "1": run kernels in Triton's interpreter; read when triton imports
# launch options: 4 warps (128 threads) per program; fused multiply-adds, Triton's default,
# asked for by name, which silences Triton 3.9's warning that the default will change
_LAUNCH = {"num_warps": 4, "enable_fp_fusion": True}


def triton_available() -> bool:
    """Say whether the Triton compiler is installed, without importing it.

    Returns:
        ``True`` when ``import triton`` would find the package. Kernels then run on a CUDA
        GPU, or on the CPU through the interpreter when ``TRITON_INTERPRET=1``.

    Introduced in :ref:`sec-triton`.
    """
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):  # a broken or half-removed install
        return False


def triton_flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """Compute exact attention with fused Triton kernels, differentiable in q, k and v.

    The forward kernel keeps one tile of queries on the chip and streams the keys past it with
    an online softmax in base 2; the backward kernels recompute the weights from the stored
    log-sum-exp. See the module's docstring for the grid, the offsets and the masks. On a CPU
    it runs in Triton's interpreter, which needs ``TRITON_INTERPRET=1`` before triton is imported.

    Args:
        q: queries ``(..., N, d)``, usually ``(B, H, N, d)``; contiguous; float32, or
            float16/bfloat16 on a GPU; ``d`` at most 128.
        k: keys ``(..., M, d)``, with the leading dims, dtype and device of ``q``; contiguous.
        v: values ``(..., M, d)``, the shape of ``k``; contiguous.
        causal: query ``i`` sees keys ``j <= i + M - N`` only; needs ``N <= M``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        The output ``(..., N, d)`` in the dtype of ``q``, equal to softmax attention up to
        rounding (products accumulate in float32).

    Introduced in :ref:`sec-triton`.
    """
    q, k, v = _check_qkv(q, k, v)
    n, m, d = q.shape[-2], k.shape[-2], q.shape[-1]
    if v.shape[-1] != d:
        raise ValueError(
            f"v must be (..., M, d) with the d of q and k ({d}), got {tuple(v.shape)}; "
            "these kernels use one feature size for all three"
        )
    causal = _check_causal(causal, n, m)
    scale = _scale(scale, d)
    if d > _MAX_D:
        raise ValueError(
            f"d must be at most {_MAX_D} for these kernels (a tile of every input must fit in "
            f"on-chip memory), got d={d}"
        )
    if q.dtype not in _DTYPES:
        raise TypeError(f"q, k and v must be float32, float16 or bfloat16, got {q.dtype}")
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not x.is_contiguous():
            raise ValueError(
                f"{name} must be contiguous (the kernels compute addresses from its shape), "
                f"got strides {x.stride()} for shape {tuple(x.shape)}; pass {name}.contiguous()"
            )
    kernels = _kernels()
    _check_device(q)
    out = _TritonFlash.apply(_flat(q), _flat(k), _flat(v), kernels, causal, scale)
    return out.reshape(q.shape)  # type: ignore[no-any-return]


def _check_device(q: torch.Tensor) -> None:
    """Triton compiles for CUDA GPUs; its interpreter runs anywhere, when chosen in time."""
    if q.device.type not in ("cpu", "cuda"):
        raise RuntimeError(f"q must be on a CPU or a CUDA GPU, got device {q.device}")
    if q.device.type == "cpu" and not (_interpreting() and os.environ.get(_ENV) == "1"):
        raise RuntimeError(
            "q is on the CPU, and compiled Triton kernels run on a CUDA GPU. To run them on the "
            "CPU in Triton's interpreter (slow: small sizes only), set the environment variable "
            "TRITON_INTERPRET=1 before triton is first imported: in a fresh Python process, "
            "first thing, import os; os.environ['TRITON_INTERPRET'] = '1'"
        )
    if q.device.type == "cpu" and q.dtype != torch.float32:
        raise TypeError(f"on the CPU (the interpreter), q must be float32, got {q.dtype}")


def _interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter.

    ``triton.jit`` reads ``TRITON_INTERPRET`` when it decorates a function, and Triton's own
    helpers (``tl.max``, ``tl.sum``) are decorated when triton is imported: the choice is made
    then, once per process. Their type tells which it was. (Parts of Triton imported on first
    use read the variable again, so it must stay set.)
    """
    language = importlib.import_module("triton.language")
    return type(language.max).__name__ == "InterpretedFunction"


def _kernels() -> ModuleType:
    """Import the kernels on first use, with a clear message when Triton is missing."""
    if not triton_available():
        raise ImportError(f"triton_flash_attention needs Triton: {_INSTALL}")
    try:
        kernels = importlib.import_module(f"{__package__}._triton_kernels")
    except ImportError as error:
        raise ImportError(
            f"triton_flash_attention could not import Triton ({error}): {_INSTALL}"
        ) from error
    interpreted = type(kernels.flash_forward_kernel).__name__ == "InterpretedFunction"
    if interpreted != _interpreting():
        raise RuntimeError(
            "TRITON_INTERPRET changed between importing triton and the first call of "
            "triton_flash_attention; set it once, before triton is imported, and restart Python"
        )
    return kernels


def _block_d(d: int) -> int:
    """``d`` rounded up to a power of two, at least 16 (the smallest ``tl.dot``)."""
    return max(16, 1 << (d - 1).bit_length())


def _precision(dtype: torch.dtype) -> str:
    """``tl.dot``'s precision: float32 follows ``torch.backends.cuda.matmul.allow_tf32``."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"  # ignored for float16 and bfloat16 inputs


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# Tiles of (rows, software-pipeline stages) to try, largest first. 64 x 64 tiles fit an A100 or
# H100 in every dtype; a T4 (64 KB of shared memory per program) needs 32 for float32.
_TILES = ((64, 3), (32, 2), (16, 1))
_FITTED: dict[tuple[str, torch.dtype, int, str], tuple[int, int]] = {}  # what worked, per GPU


def _launch(kernel: Any, rows: int, x: torch.Tensor, *args: object, **consts: object) -> None:
    """Launch ``kernel`` on the grid ``(cdiv(rows, block), B * H)`` with the largest tiles that fit.

    Triton refuses to launch a kernel whose tiles need more shared memory than the GPU has;
    then the next smaller tiles are tried, and the ones that worked are remembered.
    """
    block_d = int(consts["BLOCK_D"])  # type: ignore[call-overload]
    key = (str(kernel), x.dtype, block_d, str(x.device))
    largest = 64 if block_d <= 64 else 32  # a larger d leaves room for fewer rows
    tiles = [_FITTED[key]] if key in _FITTED else [t for t in _TILES if t[0] <= largest]
    errors = importlib.import_module("triton.runtime.errors")
    for block, stages in tiles:
        try:
            with _on_device(x):
                kernel[(_cdiv(rows, block), x.shape[0])](
                    *args, BLOCK_M=block, BLOCK_N=block, num_stages=stages, **_LAUNCH, **consts
                )
        except errors.OutOfResources:
            continue
        _FITTED[key] = (block, stages)
        return
    raise RuntimeError(f"no tiles of {tiles} fit on {x.device} for {kernel}, d={block_d}")


def _on_device(x: torch.Tensor) -> contextlib.AbstractContextManager[object]:
    """Launch on the GPU that holds ``x`` (Triton launches on the current one)."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


class _TritonFlash(torch.autograd.Function):
    """Autograd glue: the forward kernel, and the three backward kernels for the gradient."""

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,  # (BH, N, d)
        k: torch.Tensor,  # (BH, M, d)
        v: torch.Tensor,  # (BH, M, d)
        kernels: ModuleType,
        causal: bool,
        scale: float,
    ) -> torch.Tensor:
        n, m, d = q.shape[1], k.shape[1], q.shape[2]
        out = torch.empty_like(q)  # (BH, N, d)
        lse = torch.empty(q.shape[:2], device=q.device, dtype=torch.float32)  # (BH, N), base 2
        consts = {"CAUSAL": causal, "BLOCK_D": _block_d(d), "PRECISION": _precision(q.dtype)}
        _launch(  # one program per block of queries of each head
            kernels.flash_forward_kernel, n, q,
            q, k, v, out, lse, n, m, d, m - n, scale * math.log2(math.e), **consts,
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.kernels, ctx.consts, ctx.scale = kernels, consts, scale
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        kernels, consts, scale = ctx.kernels, ctx.consts, ctx.scale
        grad_out = grad_out.contiguous()  # (BH, N, d)
        n, m, d = q.shape[1], k.shape[1], q.shape[2]
        delta = torch.empty_like(lse)  # (BH, N): rowsum(dO * O)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        with _on_device(q):
            kernels.flash_backward_preprocess_kernel[(_cdiv(n, 64), q.shape[0])](
                out, grad_out, delta, n, d, BLOCK_M=64, BLOCK_D=consts["BLOCK_D"], **_LAUNCH
            )
        args = (q, k, v, grad_out, lse, delta)
        lengths = (n, m, d, m - n, scale, scale * math.log2(math.e))
        _launch(kernels.flash_backward_dkdv_kernel, m, q, *args, dk, dv, *lengths, **consts)
        _launch(kernels.flash_backward_dq_kernel, n, q, *args, dq, *lengths, **consts)
        return dq, dk, dv, None, None, None
