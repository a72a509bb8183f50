"""Contrastive preference pairs derived from the training data, to break its shortcuts (numpy only).

Each generator is deterministic given its seed and returns PairRow objects whose `subset` names the generator:
- `neighbour`: a prompt's own good response beats the good response of its nearest other prompt (by embedding);
- `padding`: a good response beats itself padded with fluent text from unrelated responses or with a repeat;
- `truncation`: a complete response beats its own truncation;
- `code-mutation`: working code beats a mutated copy (flipped comparison, off-by-one, swapped operator, dropped line);
- `refusal`: on benign prompts a helpful answer beats a refusal; on harmful prompts a refusal beats compliance;
- `fact-number`: a response beats a copy with one or two of its numbers changed (a subtly wrong answer of the
  same style and length, the case RM-Bench's chat subset tests; only the likelihood objective can see it).
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


_NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w,]|\.\d)")


def change_number(whole: str, frac: str | None, rng: np.random.Generator) -> str:
    """A different, plausible number in the same format: years move by years, other numbers by a factor or a step."""
    grouped = "," in whole
    n = int(whole.replace(",", ""))
    if frac is None and 1000 <= n <= 2100 and not grouped:  # a year
        new = n + int(rng.choice([-1, 1])) * int(rng.integers(2, 40))
    elif n < 10:
        new = n + int(rng.choice([-1, 1])) * int(rng.integers(1, 4))
        new = new if new >= 0 and new != n else n + 2
    else:
        new = int(round(n * float(rng.choice([0.5, 2.0, 3.0, 1.5, 0.7]))))
        new = new if new != n else n + 1
    text = f"{new:,}" if grouped else str(new)
    return text + (frac or "")


def corrupt_numbers(text: str, rng: np.random.Generator) -> str | None:
    """The text with one or two numbers outside code blocks changed, or None when it states no such number."""
    code = [(m.start(), m.end()) for m in re.finditer(r"```.*?```", text, re.S)]
    found = [m for m in _NUMBER.finditer(text) if not any(a <= m.start() < b for a, b in code)
             and not _is_list_marker(text, m)]
    if not found:
        return None
    picks = sorted(rng.choice(len(found), size=min(len(found), int(rng.integers(1, 3))), replace=False))
    out, last = [], 0
    for k in picks:
        m = found[int(k)]
        out += [text[last:m.start()], change_number(m.group(1), m.group(2), rng)]
        last = m.end()
    return "".join(out) + text[last:]


def _is_list_marker(text: str, m: re.Match) -> bool:
    """`1.` or `2)` opening a line: a list index, not a fact."""
    line_start = text.rfind("\n", 0, m.start()) + 1
    return not text[line_start:m.start()].strip() and text[m.end():m.end() + 1] in (".", ")")


def number_pairs(prompts: Sequence[list[dict]], responses: Sequence[str], limit: int, seed: int) -> list[PairRow]:
    """A response beats itself with one or two stated numbers changed (same words, same length, wrong facts)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.permutation(len(prompts)):
        if len(out) >= limit:
            break
        corrupted = corrupt_numbers(responses[i], rng)
        if corrupted is not None and corrupted != responses[i]:
            out.append(PairRow(f"fact-number/{i}", "fact-number", prompts[i], responses[i], corrupted))
    return out
