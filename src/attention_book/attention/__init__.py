"""Score functions, softmax, masks and attention, written to be read.

Shapes follow one convention across the book: batch dimensions first, then the sequence,
then features. Queries are ``(..., N, d)``, keys ``(..., M, d)``, values ``(..., M, d_v)``;
with heads, ``(B, H, N, d)``. A boolean mask is True where a query may attend to a key
(PyTorch's convention for ``scaled_dot_product_attention``).

Each idea has its own module: ``dot_product`` (the stable softmax, dot-product scores and
scaled dot-product attention), ``masks`` (causal and padding masks), ``learned_scores``
(additive and bilinear attention) and ``multi_head`` (multi-head attention). Import
everything from here: ``from attention_book.attention import scaled_dot_product_attention``.
"""

from __future__ import annotations

from .._facade import adopt
from .dot_product import dot_product_scores, scaled_dot_product_attention, softmax
from .learned_scores import AdditiveAttention, BilinearAttention
from .masks import causal_mask, padding_mask
from .multi_head import MultiHeadAttention

__all__ = [
    "AdditiveAttention",
    "BilinearAttention",
    "MultiHeadAttention",
    "causal_mask",
    "dot_product_scores",
    "padding_mask",
    "scaled_dot_product_attention",
    "softmax",
]

adopt(globals(), __all__)  # document and pickle them under this package
