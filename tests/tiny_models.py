"""Tiny real models built in the test session and saved, so tests run the real from_pretrained path."""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Hello, how are you today? I am fine, thank you.",
    "Write a short poem about the sea and the wind.",
    "def add(a, b):\n    return a + b\n",
    "The capital of France is Paris. Water boils at 100 degrees.",
    "I cannot help with that request, sorry.",
    "Sure! Here is a detailed, helpful answer with several steps: first, second, third.",
] * 20


def build_tokenizer(directory: Path):
    """A byte-level BPE tokenizer with a ChatML template, trained on a tiny corpus and saved."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHATML
    fast.save_pretrained(directory)
    return fast


def build_causal_lm(directory: Path, seed: int = 0) -> Path:
    """A 2-layer, hidden-16 Llama causal LM with its tokenizer, saved to directory."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def build_sequence_classifier(directory: Path, labels: tuple[str, ...] = ("helpful", "safe", "concise"),
                              seed: int = 0) -> Path:
    """A tiny Llama sequence-classification reward model with named labels, saved to directory."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, num_labels=len(labels),
                         id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    LlamaForSequenceClassification(config).save_pretrained(directory)
    return directory
