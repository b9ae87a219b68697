"""Self-checking exercises: call ``check_*`` on your function and read the feedback.

A checker runs your code on small inputs chosen to expose one property at a time and stops
at the first that fails, printing the property's name, the input that showed it, what was
expected and what came back. It never prints a solution and never raises because your code
raised: a crash is feedback too. It returns ``True`` when every property holds, so a grader
can count passes.

One module per chapter (two or more where a chapter has many exercises), in the book's
order, each reference solution next to its checker: ``ch1_intuition``, ``ch2_math``,
``ch3_rnn``, ``ch4_block``, ``ch4_language``, ``ch4_pretrained``, ``ch5_vit``, ``ch5_cnn``,
``ch6_exact``, ``ch6_memory``, ``ch6_sparse_kernel``, ``ch6_inference_ring``, ``ch7_mla``,
``ch7_paged``, ``ch7_sinks``, ``ch7_hybrid``, ``ch7_linear``, ``ch7_recall`` and
``ch7_selection``. They share
``_harness`` (running properties, calling your code, printing feedback). Import everything from
here: ``from attention_book import checks``.
"""

from __future__ import annotations

from .._facade import adopt
from ._record import verified
from .ch1_intuition import check_laplace_loo_error, check_soft_lookup
from .ch2_math import (
    check_causal_mask,
    check_multihead_attention,
    check_scaled_dot_product_attention,
    check_softmax,
)
from .ch3_rnn import check_additive_score, check_attention_decoder_step, check_max_path_length
from .ch4_block import check_layer_norm, check_rope, check_sinusoidal_positions
from .ch4_language import (
    check_attention_pooling,
    check_prefix_matching_score,
    check_temperature_sampling,
)
from .ch4_pretrained import check_attention_rollout, check_bert_embeddings, check_mean_pool
from .ch5_cnn import check_box_iou, check_doubly_stochastic_penalty, check_squeeze_excitation
from .ch5_vit import check_mean_attention_distance, check_patchify
from .ch6_exact import (
    check_attention_backward,
    check_attention_flops,
    check_max_tokens,
    check_merge_partial_attention,
    check_online_softmax,
)
from .ch6_inference_ring import (
    check_causal_ring_skips,
    check_grouped_query_attention,
    check_repeat_kv,
    check_ring_step,
)
from .ch6_memory import check_flash_io_count
from .ch6_sparse_kernel import check_causal_linear_attention, check_dilated_window_mask
from .ch7_hybrid import check_hybrid_cache_bytes
from .ch7_linear import check_decay_mask, check_delta_rule_step
from .ch7_mla import check_absorbed_query
from .ch7_paged import check_gather_blocks
from .ch7_recall import check_mqar_targets, check_state_bytes
from .ch7_selection import check_block_scores, check_topk_block_mask
from .ch7_sinks import check_sink_cache_keep, check_softmax_with_sink

__all__ = [
    "check_absorbed_query",
    "check_additive_score",
    "check_attention_backward",
    "check_attention_decoder_step",
    "check_attention_flops",
    "check_attention_pooling",
    "check_attention_rollout",
    "check_bert_embeddings",
    "check_block_scores",
    "check_box_iou",
    "check_causal_linear_attention",
    "check_causal_mask",
    "check_causal_ring_skips",
    "check_decay_mask",
    "check_delta_rule_step",
    "check_dilated_window_mask",
    "check_doubly_stochastic_penalty",
    "check_flash_io_count",
    "check_gather_blocks",
    "check_grouped_query_attention",
    "check_hybrid_cache_bytes",
    "check_laplace_loo_error",
    "check_layer_norm",
    "check_max_path_length",
    "check_max_tokens",
    "check_mean_attention_distance",
    "check_mean_pool",
    "check_merge_partial_attention",
    "check_mqar_targets",
    "check_multihead_attention",
    "check_online_softmax",
    "check_patchify",
    "check_prefix_matching_score",
    "check_repeat_kv",
    "check_ring_step",
    "check_rope",
    "check_scaled_dot_product_attention",
    "check_sink_cache_keep",
    "check_sinusoidal_positions",
    "check_soft_lookup",
    "check_softmax",
    "check_softmax_with_sink",
    "check_squeeze_excitation",
    "check_state_bytes",
    "check_temperature_sampling",
    "check_topk_block_mask",
    "verified",
]

adopt(globals(), __all__)  # document and pickle them under this package
