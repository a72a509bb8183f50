"""Contrastive preference pairs derived from the training data, to break its shortcuts (numpy only).

Each generator is deterministic given its seed and returns PairRow objects whose `subset` names the generator:
- `neighbour`: a prompt's own good response beats the good response of its nearest other prompt (by embedding);
- `padding`: a good response beats itself padded with fluent text from unrelated responses or with a repeat;
- `truncation`: a complete response beats its own truncation;
- `code-mutation`: working code beats a mutated copy (flipped comparison, off-by-one, swapped operator, dropped line);
- `refusal`: on benign prompts a helpful answer beats a refusal; on harmful prompts a refusal beats compliance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from mo_explorer.training.data import PairRow

REFUSALS = (
    "I'm sorry, but I can't help with that request.",
    "I'm sorry, I cannot assist with that.",
    "As an AI assistant, I am not able to help with this. Please ask me something else.",
    "I apologize, but I won't be able to provide that information.",
    "Sorry, I can't do that. If you have another question, I'd be happy to help.",
)


def neighbour_pairs(prompts: Sequence[list[dict]], responses: Sequence[str], embeddings: np.ndarray,
                    limit: int, seed: int) -> list[PairRow]:
    """Own response beats the nearest other prompt's response; embeddings (n, D) of the prompts."""
    rng = np.random.default_rng(seed)
    e = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-9)
    sims = e @ e.T
    keys = [str(p) for p in prompts]
    out = []
    for i in rng.permutation(len(prompts))[: limit]:
        other = np.array([keys[j] != keys[i] for j in range(len(prompts))])
        if not other.any():
            continue
        j = int(np.argmax(np.where(other, sims[i], -np.inf)))
        out.append(PairRow(f"neighbour/{i}", "neighbour", prompts[i], responses[i], responses[j]))
    return out


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 20]


def pad_response(response: str, filler_pool: Sequence[str], rng: np.random.Generator) -> str:
    """The response followed by irrelevant fluent sentences from the pool, or by a repeat of itself."""
    if rng.random() < 0.3 or not filler_pool:
        return response + "\n\n" + "In summary, " + response[:1].lower() + response[1:]
    donors = [filler_pool[int(k)] for k in rng.choice(len(filler_pool), size=min(3, len(filler_pool)),
                                                      replace=False)]
    sentences = [s for d in donors for s in _sentences(d)]
    if not sentences:
        return response + "\n\n" + response
    take = int(rng.integers(2, 6))
    extra = " ".join(sentences[int(k)] for k in rng.choice(len(sentences), size=min(take, len(sentences)),
                                                            replace=False))
    return response + "\n\n" + extra


def padding_pairs(prompts: Sequence[list[dict]], responses: Sequence[str], limit: int, seed: int) -> list[PairRow]:
    """Good response beats the same response padded with irrelevant or repeated text."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(prompts))[: limit]:
        pool = [responses[j] for j in rng.choice(len(responses), size=min(8, len(responses)), replace=False)
                if str(prompts[j]) != str(prompts[i])]
        out.append(PairRow(f"padding/{i}", "padding", prompts[i], responses[i],
                           pad_response(responses[i], pool, rng)))
    return out


def truncate_response(response: str, rng: np.random.Generator) -> str | None:
    """The response cut at 30-70% of its words (None when too short to cut meaningfully)."""
    words = response.split(" ")
    if len(words) < 20:
        return None
    cut = int(len(words) * rng.uniform(0.3, 0.7))
    return " ".join(words[:cut])


def truncation_pairs(prompts: Sequence[list[dict]], responses: Sequence[str], limit: int,
                     seed: int) -> list[PairRow]:
    """Complete response beats its own truncation."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(prompts)):
        cut = truncate_response(responses[i], rng)
        if cut is not None:
            out.append(PairRow(f"truncation/{i}", "truncation", prompts[i], responses[i], cut))
        if len(out) >= limit:
            break
    return out


_MUTATIONS = (
    ("flip-comparison", re.compile(r"(?<![<>=!])(<=|>=|<|>)(?![<>=])"),
     {"<": ">=", ">": "<=", "<=": ">", ">=": "<"}),
    ("flip-equality", re.compile(r"(==|!=)"), {"==": "!=", "!=": "=="}),
    ("swap-operator", re.compile(r"(?<=[\w)]) ([+\-*]) (?=[\w(])"), {" + ": " - ", " - ": " + ", " * ": " + "}),
    ("off-by-one", re.compile(r"\b(range\(\s*[^,()]+)\)"), None),
)


def mutate_code(code: str, rng: np.random.Generator) -> tuple[str, str] | None:
    """(mutated code, mutation name): one seeded mutation that changes the code, or None if none applies."""
    options = []
    for name, pattern, table in _MUTATIONS:
        for m in pattern.finditer(code):
            options.append((name, m, table))
    lines = code.split("\n")
    body = [i for i, ln in enumerate(lines) if ln.startswith((" ", "\t")) and ln.strip()
            and not ln.strip().startswith(("def ", "return", "#", "else", "elif", "try", "except", "for ", "if "))]
    if not options and not body:
        return None
    pick = int(rng.integers(len(options) + (1 if body else 0)))
    if pick == len(options):
        drop = body[int(rng.integers(len(body)))]
        return "\n".join(lines[:drop] + lines[drop + 1:]), "drop-line"
    name, m, table = options[pick]
    if name == "off-by-one":
        new = m.group(1) + " - 1)"
    elif name == "swap-operator":
        new = table[m.group(0)]
    else:
        new = table[m.group(1)]
    return code[: m.start()] + new + code[m.end():], name


_FENCE = re.compile(r"```(?:python|py)?\n(.*?)```", re.S)


def code_mutation_pairs(prompts: Sequence[list[dict]], responses: Sequence[str], limit: int,
                        seed: int) -> list[PairRow]:
    """A response with a fenced code block beats the same response with the block mutated."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(prompts)):
        blocks = list(_FENCE.finditer(responses[i]))
        if not blocks:
            continue
        block = blocks[int(rng.integers(len(blocks)))]
        mutated = mutate_code(block.group(1), rng)
        if mutated is None or mutated[0] == block.group(1):
            continue
        text = responses[i][: block.start(1)] + mutated[0] + responses[i][block.end(1):]
        out.append(PairRow(f"code-mutation/{i}/{mutated[1]}", "code-mutation", prompts[i], responses[i], text))
        if len(out) >= limit:
            break
    return out


def refusal_pairs(benign: Sequence[tuple[list[dict], str]], harmful: Sequence[tuple[list[dict], str, str]],
                  limit: int, seed: int) -> list[PairRow]:
    """Benign (prompt, helpful answer): answer beats a refusal; harmful (prompt, refusal, compliance): refusal wins."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(benign))[: limit]:
        prompt, answer = benign[i]
        out.append(PairRow(f"refusal-benign/{i}", "refusal-benign", prompt, answer,
                           REFUSALS[int(rng.integers(len(REFUSALS)))]))
    for i in rng.permutation(len(harmful))[: limit]:
        prompt, refusal, compliance = harmful[i]
        out.append(PairRow(f"refusal-harmful/{i}", "refusal-harmful", prompt, refusal, compliance))
    return out
