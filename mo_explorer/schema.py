"""Domain types shared by every layer: numpy only, no torch, no gradio, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

# A prompt is either plain user text or a chat conversation (list of {"role", "content"}).
Message = dict[str, str]
Prompt = Union[str, list[Message]]

# Names of objectives measured on the generation itself, not predicted by a reward model.
MEASURED_LENGTH = "length_tokens"
MEASURED_TIME = "gen_seconds"
MEASURED_LOGPROB = "mean_logprob"
# RewardOutput.extras key: per response, how many objectives the reward model could not rate and set to neutral
# (a judge whose answer was unreadable).
UNRATED = "unrated_objectives"


def as_messages(prompt: Prompt) -> list[Message]:
    """Normalise a prompt to a non-empty list of chat messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


def prompt_text(prompt: Prompt) -> str:
    """The last user turn of a prompt, for display."""
    messages = as_messages(prompt)
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else messages[-1]["content"]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling parameters of one round."""

    n: int = 4
    max_new_tokens: int = 128
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    steer: Direction | None = None  # a steered round: decoding guided along this direction (else a plain round)

    @property
    def mode(self) -> str:
        """'steered' when decoding was guided along a direction, else 'plain'."""
        return "plain" if self.steer is None else "steered"

    def to_dict(self) -> dict:
        """As JSON; a plain round's parameters carry no 'steer' key (older stores and files have none)."""
        data = {"n": self.n, "max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "top_p": self.top_p, "seed": self.seed}
        if self.steer is not None:
            data["steer"] = self.steer.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> GenerationParams:
        """The inverse of to_dict (a 'steer' entry becomes a Direction)."""
        steer = data.get("steer")
        if isinstance(steer, dict):
            steer = Direction(tuple(steer["objectives"]), tuple(steer["weights"]), steer.get("method", "linear"))
        return cls(**{**data, "steer": steer})


@dataclass(frozen=True)
class Generation:
    """One sampled response with what was measured while producing it."""

    text: str
    n_tokens: int
    seconds: float  # wall time from the start of the batched call until this sequence finished
    finished: bool = True  # False when cut by max_new_tokens
    # What the generator itself produced (empty when the sampler does not keep them): the token ids, whose text
    # may re-tokenise differently (SmolLM2's GGUF tokenizer splits a generated "\n\n" token in two), and
    token_ids: tuple[int, ...] = ()
    token_logprobs: tuple[float, ...] = ()  # log p(token_t | prompt, tokens < t), one per generated token
    end_logprobs: tuple[float, ...] = ()  # log p(end of turn) at each position 0..n_tokens (where it ended last)
    row: int = -1  # which of the round's n sampled rows wrote it (-1 when the generator does not say)

    def mean_logprob(self, max_tokens: int, closing: int) -> float | None:
        """The generator's mean log-prob of this response as the likelihood objective reads a response.

        Like a scoring pass over the chat template: at most `max_tokens - closing` response tokens, then the
        end-of-turn token; the template's further closing tokens (a newline after it) are taken as certain.
        None when the sampler kept no log-probs.
        """
        m = min(self.n_tokens, max(1, max_tokens - closing))
        if len(self.token_logprobs) < m or len(self.end_logprobs) <= m:
            return None
        values = list(self.token_logprobs[:m]) + [self.end_logprobs[m]] + [0.0] * max(0, closing - 1)
        return float(sum(values) / len(values))


@dataclass(frozen=True)
class RewardOutput:
    """ArmoRM-shaped output for one prompt and its n responses.

    rewards (n, k) float32, gating (k,), transform (k, k), score (n,) with
    score == sum(gating * (rewards @ transform), axis=1).
    """

    objectives: tuple[str, ...]
    rewards: np.ndarray
    gating: np.ndarray
    transform: np.ndarray
    score: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. mean_logprob (n,)

    def __post_init__(self) -> None:
        n, k = self.rewards.shape
        if k != len(self.objectives):
            raise ValueError(f"rewards has {k} columns but {len(self.objectives)} objectives")
        if self.gating.shape != (k,) or self.transform.shape != (k, k) or self.score.shape != (n,):
            raise ValueError("gating must be (k,), transform (k, k) and score (n,)")


@dataclass(frozen=True)
class Direction:
    """A preference direction: a unit vector over named objectives (DPA), and how to scalarise."""

    objectives: tuple[str, ...]
    weights: tuple[float, ...]
    method: str = "linear"  # "linear" (v . r) or "tchebycheff"

    def __post_init__(self) -> None:
        if len(self.objectives) != len(self.weights) or not self.objectives:
            raise ValueError("a direction needs one weight per objective")
        if self.method not in ("linear", "tchebycheff"):
            raise ValueError(f"unknown scalarisation {self.method!r}; use 'linear' or 'tchebycheff'")
        if not np.all(np.isfinite(self.weights)) or float(np.linalg.norm(self.weights)) == 0.0:
            raise ValueError("direction weights must be finite and not all zero")

    def unit(self) -> np.ndarray:
        """Weights as a unit vector (k,) float64."""
        w = np.asarray(self.weights, dtype=np.float64)
        return w / np.linalg.norm(w)

    def to_dict(self) -> dict:
        """The direction as JSON: {"objectives", "weights", "method"} (stored, exported and served alike)."""
        return {"objectives": list(self.objectives), "weights": [float(w) for w in self.weights],
                "method": self.method}


@dataclass(frozen=True)
class Candidate:
    """A scored response inside a round; rewards follow the round's objective order."""

    index: int
    text: str
    rewards: np.ndarray  # (k_all,) float32: model objectives then measured ones
    score: float  # the reward model's gated score
    n_tokens: int
    gen_seconds: float


@dataclass(frozen=True)
class Round:
    """One prompt, its parameters and its scored candidates."""

    round_id: str
    session_id: str
    prompt: list[Message]
    params: GenerationParams
    generator_id: str
    reward_model_id: str
    objectives: tuple[str, ...]  # model objectives followed by measured ones
    measured: tuple[bool, ...]  # True where the objective is measured, not predicted
    maximize: tuple[bool, ...]  # False for costs (generation time): lower is better there
    gating: np.ndarray  # (k_model,) the gate's weights for the model objectives
    transform: np.ndarray  # (k_model, k_model)
    candidates: tuple[Candidate, ...]
    created_at: str  # ISO-8601 UTC
    direction: Direction | None = None  # the latest direction stored for this round
    status: str = "complete"  # "running" while candidates arrive, then "complete", "failed" or "cancelled"
    error: str | None = None  # why a round failed; candidates stored before the failure are kept

    def reward_matrix(self) -> np.ndarray:
        """All candidates' rewards (n, k_all) float32."""
        if not self.candidates:
            return np.zeros((0, len(self.objectives)), dtype=np.float32)
        return np.stack([c.rewards for c in self.candidates]).astype(np.float32)

    def scores(self) -> np.ndarray:
        """Gated scores (n,) float32."""
        return np.asarray([c.score for c in self.candidates], dtype=np.float32)

    def positions(self) -> dict[int, int]:
        """Candidate id (Candidate.index) -> its row in reward_matrix() and scores().

        Not always the same number: an imported session keeps the ids it was exported with.
        """
        return {c.index: row for row, c in enumerate(self.candidates)}


@dataclass(frozen=True)
class SessionSummary:
    """A session as listed: id, creation time and its rounds' ids and prompts."""

    session_id: str
    created_at: str
    rounds: tuple[tuple[str, str], ...]  # (round_id, prompt preview)


@dataclass(frozen=True)
class Vote:
    """A side-by-side judgement between two candidates of one round."""

    vote_id: str
    session_id: str
    round_id: str
    a_index: int
    b_index: int
    outcome: str  # "a" | "b" | "tie" | "both_bad"
    direction: Direction | None
    created_at: str

    OUTCOMES = ("a", "b", "tie", "both_bad")
