"""On-disk cache of per-token hidden states (bfloat16 bits as uint16), keyed by text: resumable, numpy only.

The trunk trains its top layers on the states of the layers below, computed once. A 128-token sequence costs
about 100 KB. Layout: <root>/<name>-<spec hash>/spec.json and shard-*.npz, each shard holding `keys` (n,),
`offsets` (n + 1,) and `states` (sum of lengths, D) uint16; a shard is written to a temporary name and renamed,
so a crash loses at most the chunk being computed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class StateCache:
    """Token states of one (backbone, layer, token layout) spec."""

    def __init__(self, root: str | Path, spec: dict, name: str = "minilm-states"):
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        self.dir = Path(root).expanduser() / f"{name}-{digest}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "spec.json").write_text(json.dumps(spec, indent=2))
        self.states: dict[str, np.ndarray] = {}
        for shard in sorted(self.dir.glob("shard-*.npz")):
            with np.load(shard) as z:
                keys, offsets, states = z["keys"], z["offsets"], z["states"]
            for i, k in enumerate(keys):
                self.states[str(k)] = states[offsets[i]:offsets[i + 1]]
        log.info("state cache %s: %d sequences", self.dir, len(self.states))

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys (deduplicated, in order) not in the cache."""
        return [k for k in dict.fromkeys(keys) if k not in self.states]

    def write(self, keys: Sequence[str], states: Sequence[np.ndarray]) -> None:
        """Add sequences (each (T_i, D) uint16) as one new shard."""
        if not keys:
            return
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in states])]).astype(np.int64)
        n = len(list(self.dir.glob("shard-*.npz")))
        tmp = self.dir / f".tmp-{os.getpid()}.npz"
        np.savez(tmp, keys=np.array(list(keys)), offsets=offsets, states=np.concatenate(list(states)))
        tmp.rename(self.dir / f"shard-{n:05d}-{os.getpid()}.npz")
        for k, s in zip(keys, states):
            self.states[k] = s

    def fill(self, items: dict[str, object], encode: Callable[[list[object]], list[np.ndarray]],
             chunk: int = 512) -> int:
        """Compute the states of items {key: item} missing from the cache, `chunk` items per shard; -> count."""
        todo = self.missing(list(items))
        for start in range(0, len(todo), chunk):
            keys = todo[start:start + chunk]
            self.write(keys, encode([items[k] for k in keys]))
            log.info("state cache: %d/%d computed", min(start + chunk, len(todo)), len(todo))
        return len(todo)

    def get(self, keys: Sequence[str]) -> list[np.ndarray]:
        """The states of keys, in order (KeyError if one is missing)."""
        return [self.states[k] for k in keys]
