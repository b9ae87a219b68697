"""The real MiniLM's weights, copied tensor by tensor into the book's :class:`BertEncoder`."""

from __future__ import annotations

import functools

import torch

from .bert import BertEncoder
from .minilm import load_minilm

__all__ = ["minilm_encoder"]


# Where each tensor of a transformers BertModel goes in BertEncoder.
_EMBEDDING_NAMES = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.token_type_embeddings": "embeddings.token_type",
    "embeddings.LayerNorm": "embeddings.norm",
}
_LAYER_NAMES = {
    "attention.self.query": "self_attn.q_proj",
    "attention.self.key": "self_attn.k_proj",
    "attention.self.value": "self_attn.v_proj",
    "attention.output.dense": "self_attn.out_proj",
    "attention.output.LayerNorm": "attn_sublayer.norm",
    "intermediate.dense": "feed_forward.up",
    "output.dense": "feed_forward.down",
    "output.LayerNorm": "ff_sublayer.norm",
}


def _our_name(name: str) -> str | None:
    module, _, leaf = name.rpartition(".")
    if module in _EMBEDDING_NAMES:
        return f"{_EMBEDDING_NAMES[module]}.{leaf}"
    parts = module.split(".")
    if parts[:2] == ["encoder", "layer"]:
        return f"encoder.layers.{parts[2]}.{_LAYER_NAMES['.'.join(parts[3:])]}.{leaf}"
    return None  # the pooler, unused by sentence embeddings


@functools.lru_cache(maxsize=1)
def _minilm_state() -> dict[str, torch.Tensor]:
    model, _ = load_minilm()
    state = {}
    for name, tensor in model.state_dict().items():
        ours = _our_name(name)
        if ours is not None:
            state[ours] = tensor.detach().clone()
    return state


def minilm_encoder() -> BertEncoder:
    """Build the book's :class:`BertEncoder` and copy the real MiniLM's weights into it.

    Every tensor of the real model except its unused pooler has a place in the book's
    encoder; the copy is checked to fill every parameter. Each call returns a new module
    (in eval mode), so changing it does not change the next one.

    Returns:
        A :class:`BertEncoder` that computes the real model's hidden states.

    Introduced in :ref:`sec-pretrained`.
    """
    model, _ = load_minilm()
    config = model.config
    with torch.device("meta"):  # no memory, no random init: every tensor is replaced below
        ours = BertEncoder(
            vocab_size=config.vocab_size,
            d_model=config.hidden_size,
            num_heads=config.num_attention_heads,
            num_layers=config.num_hidden_layers,
            d_ff=config.intermediate_size,
            max_len=config.max_position_embeddings,
            type_vocab_size=config.type_vocab_size,
            eps=config.layer_norm_eps,
        )
    state = {name: tensor.clone() for name, tensor in _minilm_state().items()}
    ours.load_state_dict(state, strict=True, assign=True)  # fails if any tensor is left out
    return ours.eval()
