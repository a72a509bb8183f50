"""Helpers shared by the UI, plotting and browser tests: synthetic rounds, a tiny-model Explorer, a served app."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence

import numpy as np

from mo_explorer.config import Settings
from mo_explorer.schema import Candidate, Direction, GenerationParams, Round

NAMES = ("helpful", "safe", "concise", "length_tokens", "gen_seconds")
MAXIMIZE = (True, True, True, False, False)  # length and time are costs, as the Explorer stores them


def synthetic_round(rewards: np.ndarray, texts: Sequence[str] | None = None, names: Sequence[str] = NAMES,
                    maximize: Sequence[bool] = MAXIMIZE, k_model: int = 3, direction: Direction | None = None,
                    scores: Sequence[float] | None = None) -> Round:
    """A Round (no models, no database) with the given rewards (n, k)."""
    rewards = np.asarray(rewards, dtype=np.float32)
    n = rewards.shape[0]
    texts = list(texts) if texts is not None else [f"response number {i}" for i in range(n)]
    gating = np.full(k_model, 1.0 / k_model, dtype=np.float32)
    scores = list(scores) if scores is not None else rewards[:, :k_model].mean(axis=1).tolist()
    cands = tuple(Candidate(index=i, text=texts[i], rewards=rewards[i], score=float(scores[i]), n_tokens=10 + i,
                            gen_seconds=1.0) for i in range(n))
    return Round(round_id="r1", session_id="s1", prompt=[{"role": "user", "content": "Say <b>hi</b>"}],
                 params=GenerationParams(n=n), generator_id="gen", reward_model_id="rm", objectives=tuple(names),
                 measured=tuple(i >= k_model for i in range(len(names))), maximize=tuple(maximize), gating=gating,
                 transform=np.eye(k_model, dtype=np.float32), candidates=cands, created_at="2026-11-27T01:00:00Z",
                 direction=direction)


def tiny_settings(**env: str) -> Settings:
    """Settings with small limits, so tiny-model rounds stay quick."""
    return Settings.from_env({"MO_EXPLORER_MAX_NEW_TOKENS_LIMIT": "16", "MO_EXPLORER_N": "4",
                              "MO_EXPLORER_MAX_NEW_TOKENS": "6", **env})


def tiny_explorer(lm_dir, classifier_dir, db_path, cache_dir, settings: Settings | None = None):
    """An Explorer on the tiny test models and a SQLite file (db_path), or any database URL given as a string."""
    from mo_explorer.explorer import Explorer
    from mo_explorer.models.generator import Generator
    from mo_explorer.models.reward import SequenceClassificationRewardModel
    from mo_explorer.storage.store import Store

    settings = settings or tiny_settings()
    return Explorer(settings, Generator.load(str(lm_dir), cache_dir=str(cache_dir), dtype="float32",
                                             batch_rows=settings.models.batch_rows),
                    SequenceClassificationRewardModel.load(str(classifier_dir), cache_dir=str(cache_dir)),
                    Store(db_path if "://" in str(db_path) else f"sqlite:///{db_path}"))


def tiny_page(lm_dir, classifier_dir, tmp):
    """The page built on an Explorer over the tiny models, its database under tmp: what handler tests drive."""
    from types import SimpleNamespace

    from mo_explorer.ui.app import build_demo

    settings = tiny_settings()
    explorer = tiny_explorer(lm_dir, classifier_dir, tmp / "db.sqlite", tmp / "cache", settings)
    demo = build_demo(explorer, settings)
    return SimpleNamespace(explorer=explorer, h=demo.mo_handlers, c=demo.mo_components, cc=demo.mo_compare,
                           ch=demo.mo_compare_handlers, demo=demo, settings=settings)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(explorer, settings: Settings) -> Iterator[str]:
    """The app launched in this process on a free port; yields its URL and closes it after."""
    from mo_explorer.ui.app import build_demo, serve

    demo = build_demo(explorer, settings)
    port = free_port()
    serve(demo, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextlib.contextmanager
def served_tiny(lm_dir, classifier_dir, tmp) -> Iterator[tuple]:
    """(explorer, url): the page on an Explorer over the tiny models, its database under tmp, served here."""
    settings = tiny_settings()
    explorer = tiny_explorer(lm_dir, classifier_dir, tmp / "db.sqlite", tmp / "cache", settings)
    with served(explorer, settings) as url:
        yield explorer, url
