"""A tiny BERT saved to a directory, as a sentence encoder the tests load through the real from_pretrained path."""

from __future__ import annotations

from pathlib import Path


def save_tiny_bert(directory: Path, words: list[str], layers: int, positions: int = 512) -> Path:
    """Tokenizer (the special tokens, then `words`) and a randomly initialised (seed 0) BERT of hidden size 16."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=positions)
    BertModel(config).eval().save_pretrained(directory)
    return directory
