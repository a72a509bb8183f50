"""Would a SmolLM2 trunk judge RM-Bench chat better than MiniLM's? SmolLM2's first LOWER layers frozen (bfloat16,
states held in memory), the next TOP layers trained as the `quality` trunk with the shipped trunk's sample, pair
weights, length term and optimiser (training.trunk, models.trunk.fit_pairs), then scored alone on all 7,182
RM-Bench dev pairs, raw and length-balanced. A measurement, not a shipped path (bench/trunk.md, "A SmolLM2 trunk").

    python -m bench.smollm2_trunk LOWER TOP STEPS      # 6 2 1000: 16 min here; 12 2 1000: 21 min

Compare with the shipped MiniLM trunk alone: python -m bench.trunk_rmbench data/reward_head.
Writes /tmp/smollm2_trunk_LOWER_TOP_STEPS.json.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.trunk_rmbench import DEV, subset_table
from mo_explorer import config, schema
from mo_explorer.models import trunk as T
from mo_explorer.models.embedded import SMOLLM2, resolve_model_path
from mo_explorer.training import data as D
from mo_explorer.training import trunk as TR
from mo_explorer.training.feature_cache import text_key
from mo_explorer.training.style import style_diffs

SHIPPED_SAMPLE = ["--pairs", "../shared/data/train/pairs.jsonl.gz",
                  "--ratings", "../shared/data/train/ratings.jsonl.gz",
                  "--train-subsets", "rmb-helpfulness", "alpacaeval", "ratings-overall", "ratings-helpfulness",
                  "--extra-pairs", "6000"]


def token_ids(tok, prompt: schema.Prompt, response: str, max_tokens: int = 128) -> list[int]:
    """The chat layout with the request's last 64 tokens and as much of the answer as fits (as the MiniLM trunk)."""
    def enc(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    question = enc(schema.prompt_text(prompt))[-64:]
    head = enc("<|im_start|>user\n") + question + enc("<|im_end|>\n<|im_start|>assistant\n")
    return head + enc(response)[: max_tokens - len(head)]


def causal_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 0/1 -> (B, 1, T, T) additive causal mask that also hides padding."""
    width = mask.shape[1]
    ok = torch.tril(torch.ones(width, width, dtype=torch.bool))[None, None] & mask[:, None, None, :].bool()
    return torch.zeros(mask.shape[0], 1, width, width).masked_fill(~ok, torch.finfo(torch.float32).min)


def run_layers(rotary, layers, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    positions = torch.arange(hidden.shape[1])[None].expand(hidden.shape[0], -1)
    rope, additive = rotary(hidden, positions), causal_mask(mask).to(hidden.dtype)
    for layer in layers:
        out = layer(hidden, attention_mask=additive, position_ids=positions, position_embeddings=rope)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class LlamaTrunk(T.Trunk):
    """SmolLM2 decoder layers + its final norm (frozen) + mean pooling + the quality head."""

    def __init__(self, layers, norm, rotary, hidden_size: int):
        super().__init__(layers, hidden_size)
        self.norm, self.rotary = norm, rotary
        self.norm.requires_grad_(False)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.norm(run_layers(self.rotary, self.layers, hidden, mask))
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return pooled, self.quality(pooled)[:, 0]


def lower_states(inner, lower: int, pieces: list[list[int]]) -> list[np.ndarray]:
    """bf16 bits (T_i, D) of each id list after SmolLM2's first `lower` layers, run in bfloat16."""
    model = copy.deepcopy(inner).to(torch.bfloat16)
    out: list[np.ndarray] = [None] * len(pieces)  # type: ignore[list-item]
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    with torch.no_grad():
        for start in range(0, len(order), 16):
            idx = order[start:start + 16]
            width = max(len(pieces[i]) for i in idx)
            ids = torch.tensor([pieces[i] + [0] * (width - len(pieces[i])) for i in idx])
            mask = torch.tensor([[1] * len(pieces[i]) + [0] * (width - len(pieces[i])) for i in idx])
            hidden = run_layers(model.rotary_emb, model.layers[:lower], model.embed_tokens(ids), mask)
            bits = hidden.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
            for row, i in enumerate(idx):
                out[i] = bits[row, : len(pieces[i])].copy()
            if start % 1600 == 0:
                logging.info("cached %d/%d", start, len(pieces))
    return out


def main(lower: int, top: int, steps: int) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    cfg = TR.TrunkRunConfig.from_args(TR.make_parser().parse_args(SHIPPED_SAMPLE + ["--steps", str(steps)]))
    pairs, _ = TR.sample_pairs(cfg)
    train = [p for p in pairs if TR.trains(p, cfg.train_subsets)]
    dev = D.read_pairs(DEV)
    path = resolve_model_path(SMOLLM2, config.Settings.from_env().models.cache_dir)
    tok = AutoTokenizer.from_pretrained(path)
    inner = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval().model
    items = {text_key(p.prompt, t): (p.prompt, t) for p in train + dev for t in (p.chosen, p.rejected)}
    keys = list(items)
    start = time.perf_counter()
    states = dict(zip(keys, lower_states(inner, lower, [token_ids(tok, *items[k]) for k in keys])))
    cache_s = time.perf_counter() - start
    trunk = LlamaTrunk([copy.deepcopy(layer) for layer in inner.layers[lower:lower + top]], copy.deepcopy(inner.norm),
                       inner.rotary_emb, inner.config.hidden_size)
    kc, kr = TR.keys(train)
    start = time.perf_counter()
    report = T.fit_pairs(trunk, [states[k] for k in kc], [states[k] for k in kr], style_diffs(train, ()),
                         TR.pair_weights(train), T.FitSettings(steps=steps, batch_pairs=8, lr=5e-5, seed=0))
    fit_s = time.perf_counter() - start
    dc, dr = TR.keys(dev)
    _, chosen = T.score_states(trunk, [states[k] for k in dc])
    _, rejected = T.score_states(trunk, [states[k] for k in dr])
    out = {"lower": lower, "top": top, "steps": steps, "texts": len(keys), "cache_s": cache_s, "fit_s": fit_s,
           "fit": report, **subset_table(dev, chosen, rejected)}
    with open(f"/tmp/smollm2_trunk_{lower}_{top}_{steps}.json", "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main(*map(int, sys.argv[1:4]))
