"""Readers for rating and preference files (JSON Lines, optionally gzip), numpy only.

Ratings: our format (`prompt` as chat messages, `response`, objective columns in [0, 1] or null) and HelpSteer2's
column layout (`prompt` string, `response`, helpfulness/correctness/coherence/complexity/verbosity on 0-4).
Pairs: our format (`prompt` as messages, `chosen`, `rejected`, `subset`), RewardBench's (`prompt` a string) and
TRL's preference format (`chosen`/`rejected` as message lists, with or without a separate `prompt`).
A malformed row raises UserError naming the file and line.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mo_explorer.errors import UserError

log = logging.getLogger(__name__)

OBJECTIVES = ("helpfulness", "overall", "harmlessness", "compliance")
HELPSTEER2 = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


@dataclass(frozen=True)
class RatingRow:
    """One rated (prompt, response) with labels in [0, 1]; missing objectives are absent from `labels`."""

    id: str
    source: str
    prompt: list[dict]
    response: str
    labels: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PairRow:
    """One preference: `chosen` beats `rejected` for `prompt`."""

    id: str
    subset: str
    prompt: list[dict]
    chosen: str
    rejected: str
    chosen_style: int | None = None
    rejected_style: int | None = None
    source: str = ""


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a .jsonl or .jsonl.gz file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    with raw, io.TextIOWrapper(raw, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
            yield number, obj


def _messages(value, where: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in value):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    raise UserError(f"{where}: 'prompt' must be a string or a non-empty list of {{role, content}} messages")


def _text(value, where: str, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict) and "content" in value[-1]:
        return str(value[-1]["content"])  # TRL: a list of messages ending with the assistant's reply
    raise UserError(f"{where}: '{name}' must be a string or a list of messages")


def read_pairs(path: str | Path) -> list[PairRow]:
    """All preference pairs of a file in our, RewardBench's or TRL's format."""
    rows = []
    for number, obj in iter_jsonl(path):
        where = f"{path}:{number}"
        for key in ("chosen", "rejected"):
            if key not in obj:
                raise UserError(f"{where}: missing '{key}' (expected keys prompt, chosen, rejected)")
        chosen, rejected = obj["chosen"], obj["rejected"]
        if "prompt" in obj:
            prompt = _messages(obj["prompt"], where)
        elif isinstance(chosen, list) and len(chosen) >= 2:
            prompt = _messages(chosen[:-1], where)  # TRL implicit prompt: shared conversation prefix
        else:
            raise UserError(f"{where}: missing 'prompt'")
        rows.append(PairRow(
            id=str(obj.get("id", number)), subset=str(obj.get("subset") or obj.get("source") or "all"),
            prompt=prompt, chosen=_text(chosen, where, "chosen"), rejected=_text(rejected, where, "rejected"),
            chosen_style=obj.get("chosen_style"), rejected_style=obj.get("rejected_style"),
            source=str(obj.get("source", ""))))
    if not rows:
        raise UserError(f"{path}: no pairs found")
    return rows


def read_ratings(path: str | Path) -> list[RatingRow]:
    """All rated rows of a file in our format or HelpSteer2's (0-4 scores rescaled to [0, 1])."""
    rows = []
    for number, obj in iter_jsonl(path):
        where = f"{path}:{number}"
        if "prompt" not in obj or "response" not in obj:
            raise UserError(f"{where}: a rating row needs 'prompt' and 'response'")
        helpsteer = isinstance(obj["prompt"], str) and "correctness" in obj
        names = HELPSTEER2 if helpsteer else tuple(k for k in obj if k not in
                                                   ("id", "source", "prompt", "response", "scenario"))
        labels = {}
        for name in names:
            value = obj.get(name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or math.isnan(float(value)):
                raise UserError(f"{where}: '{name}' must be a number or null, got {value!r}")
            labels[name] = float(value) / 4.0 if helpsteer else float(value)
        rows.append(RatingRow(id=str(obj.get("id", number)), source=str(obj.get("source", "")),
                              prompt=_messages(obj["prompt"], where), response=str(obj["response"] or ""),
                              labels=labels))
    if not rows:
        raise UserError(f"{path}: no rated rows found")
    return rows


def stratified_sample(groups: list[str], limit: int | None, seed: int) -> np.ndarray:
    """Indices (sorted) of a sample of `limit` rows, allocated to each group in proportion to its size."""
    n = len(groups)
    if limit is None or limit >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    members = {g: np.array([i for i, x in enumerate(groups) if x == g]) for g in names}
    quota = {g: limit * len(members[g]) / n for g in names}
    take = {g: int(math.floor(quota[g])) for g in names}
    # Largest remainders get the leftover rows, so the sample has exactly `limit` rows.
    for g in sorted(names, key=lambda g: quota[g] - take[g], reverse=True)[: limit - sum(take.values())]:
        take[g] += 1
    chosen = [rng.choice(members[g], size=take[g], replace=False) for g in names if take[g]]
    return np.sort(np.concatenate(chosen))


def prompt_key(prompt: list[dict]) -> str:
    """A stable string for a conversation, for grouping and caching."""
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def sample_ratings(rows: list[RatingRow], per_objective: dict[str, int], seed: int) -> list[int]:
    """Indices of up to per_objective[name] rows labelled with each objective (seeded, deterministic)."""
    rng = np.random.default_rng(seed)
    picked: set[int] = set()
    for name in sorted(per_objective):
        labelled = np.array([i for i, r in enumerate(rows) if name in r.labels])
        if len(labelled) == 0:
            continue
        take = min(per_objective[name], len(labelled))
        picked.update(int(i) for i in rng.choice(labelled, size=take, replace=False))
    return sorted(picked)


def sample_grouped(rows: list[RatingRow], name: str, n_rows: int, per_prompt: int, seed: int) -> list[int]:
    """Indices of about n_rows rows labelled with `name`, taken as whole prompt groups of per_prompt responses."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if name in r.labels:
            groups.setdefault(prompt_key(r.prompt), []).append(i)
    keys = [k for k in sorted(groups) if len(groups[k]) >= 2]
    out: list[int] = []
    for k in (keys[int(j)] for j in rng.permutation(len(keys))):
        members = groups[k]
        out += [int(i) for i in rng.choice(members, size=min(per_prompt, len(members)), replace=False)]
        if len(out) >= n_rows:
            break
    return sorted(out)
