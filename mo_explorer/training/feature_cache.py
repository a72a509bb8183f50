"""On-disk feature cache, keyed by backbone spec and by the exact texts: resumable, numpy only.

Layout: <root>/<spec hash>/spec.json and shard-*.npz files. Each shard holds the keys it adds and their arrays;
a crash loses at most the rows since the last flush. Keys are SHA-1 hashes of the prompt (gate features) or of the
(prompt, response) pair (response features), so any data file or row subset reuses what is already there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mo_explorer.training.data import prompt_key

log = logging.getLogger(__name__)


def text_key(prompt: list[dict], response: str | None = None) -> str:
    """SHA-1 of a prompt (response None) or of a (prompt, response) pair."""
    payload = prompt_key(prompt) + ("" if response is None else "\x00R\x00" + response)
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


class FeatureCache:
    """Prompt states and response states/log-probs of one backbone spec, stored in npz shards."""

    def __init__(self, root: str | Path, spec: dict):
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        self.dir = Path(root).expanduser() / f"{spec.get('name', 'backbone').replace(':', '-').replace('/', '_')}" \
                                             f"-{digest}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "spec.json").write_text(json.dumps(spec, indent=2))
        self.prompts: dict[str, np.ndarray] = {}
        self.responses: dict[str, tuple[np.ndarray, float, int]] = {}
        self._pending_p: dict[str, np.ndarray] = {}
        self._pending_r: dict[str, tuple[np.ndarray, float, int]] = {}
        for shard in sorted(p for p in self.dir.glob("shard-*.npz") if not p.name.endswith(".tmp.npz")):
            with np.load(shard) as z:
                for k, v in zip(z["p_keys"], z["p_states"]):
                    self.prompts[str(k)] = v
                for k, v, lp, nt in zip(z["r_keys"], z["r_states"], z["r_logprob"], z["r_tokens"]):
                    self.responses[str(k)] = (v, float(lp), int(nt))
        log.info("feature cache %s: %d prompts, %d responses", self.dir, len(self.prompts), len(self.responses))

    def put(self, prompt: list[dict], prompt_states: np.ndarray, responses: Sequence[str],
            states: np.ndarray, logprob: np.ndarray, n_tokens: np.ndarray) -> None:
        """Add one group's features (states (n, L, D), logprob (n,), n_tokens (n,))."""
        pk = text_key(prompt)
        self.prompts[pk] = self._pending_p[pk] = prompt_states.astype(np.float32)
        for i, r in enumerate(responses):
            key = text_key(prompt, r)
            self.responses[key] = self._pending_r[key] = (states[i].astype(np.float32), float(logprob[i]),
                                                          int(n_tokens[i]))

    def flush(self) -> None:
        """Write pending rows to a new shard."""
        if not self._pending_r and not self._pending_p:
            return
        pk, rk = list(self._pending_p), list(self._pending_r)
        some = next(iter(self.responses.values()))[0] if self.responses else np.zeros((1, 1), np.float32)
        shard = self.dir / f"shard-{time.time_ns()}.npz"
        tmp = shard.with_suffix(".tmp.npz")
        np.savez(tmp, p_keys=np.array(pk, dtype="U40"),
                 p_states=np.stack([self._pending_p[k] for k in pk]) if pk else np.zeros((0,) + some.shape),
                 r_keys=np.array(rk, dtype="U40"),
                 r_states=np.stack([self._pending_r[k][0] for k in rk]) if rk else np.zeros((0,) + some.shape),
                 r_logprob=np.array([self._pending_r[k][1] for k in rk], np.float32),
                 r_tokens=np.array([self._pending_r[k][2] for k in rk], np.int32))
        tmp.rename(shard)
        self._pending_p.clear()
        self._pending_r.clear()

    @staticmethod
    def _batches(todo, encode, encode_items, chunk):
        """Yield lists of (prompt, responses, GroupFeatures): one prompt group, or `chunk` items across prompts."""
        if encode_items is None:
            for prompt, responses in todo:
                yield [(prompt, responses, encode(prompt, responses))]
            return
        flat = [(p, r) for p, rs in todo for r in rs]
        for i in range(0, len(flat), chunk):
            part = flat[i:i + chunk]
            yield [(p, [r], g) for (p, r), g in zip(part, encode_items(part))]

    def has(self, prompt: list[dict], response: str) -> bool:
        """True when this (prompt, response) and its prompt are cached."""
        return text_key(prompt, response) in self.responses and text_key(prompt) in self.prompts

    def fill(self, groups: dict[str, tuple[list[dict], list[str]]], encode: Callable, flush_seconds: float = 60.0,
             progress: bool = True, encode_items: Callable | None = None, chunk: int = 64) -> None:
        """Compute missing features for {key: (prompt, responses)} with encode(prompt, responses) -> GroupFeatures.

        With encode_items([(prompt, response)]) -> [GroupFeatures] (batched across prompts), items go `chunk` at a
        time instead of one prompt group at a time: faster where groups are small, as in the training data.
        """
        from tqdm.auto import tqdm

        todo = [(p, [r for r in dict.fromkeys(rs) if not self.has(p, r)]) for p, rs in groups.values()]
        todo = [(p, rs) for p, rs in todo if rs]
        total = sum(len(rs) for _, rs in todo)
        if not total:
            return
        log.info("extracting features for %d responses in %d prompt groups into %s", total, len(todo), self.dir)
        start = last = time.perf_counter()
        done = 0
        with tqdm(total=total, unit="text", disable=not progress, desc="features") as bar:
            for batch in self._batches(todo, encode, encode_items, chunk):
                for prompt, responses, g in batch:
                    self.put(prompt, g.prompt_states, responses, g.response_states, g.mean_logprob, g.n_tokens)
                    done += len(responses)
                    bar.update(len(responses))
                if time.perf_counter() - last > flush_seconds:
                    self.flush()
                    last = time.perf_counter()
        self.flush()
        elapsed = time.perf_counter() - start
        log.info("features: %d texts in %.0f s (%.2f texts/s)", done, elapsed, done / max(elapsed, 1e-9))

    def arrays(self, prompts: Sequence[list[dict]], responses: Sequence[str]):
        """Prompt states (n, L, Dg), response states (n, L, D), logprob (n,), n_tokens (n,) for aligned rows."""
        p = np.stack([self.prompts[text_key(q)] for q in prompts])
        rs = [self.responses[text_key(q, r)] for q, r in zip(prompts, responses)]
        return (p, np.stack([r[0] for r in rs]), np.array([r[1] for r in rs], np.float32),
                np.array([r[2] for r in rs], np.int32))
