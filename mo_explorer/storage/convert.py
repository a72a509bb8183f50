"""Conversion between ORM rows / JSON values and schema types, with the shape checks done on the way in."""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np

from mo_explorer.errors import UserError
from mo_explorer.schema import Candidate, Direction, GenerationParams, Message, Round, Vote, prompt_text
from mo_explorer.storage.tables import CandidateRow, RoundRow, VoteRow

PREVIEW_CHARS = 80
ROUND_STATUSES = ("running", "complete", "failed", "cancelled")
FINISHED_STATUSES = ("complete", "failed", "cancelled")


def now_utc() -> str:
    """The current time as an ISO-8601 UTC string with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_id() -> str:
    """An unguessable URL-safe id (128 random bits) that does not start with "-"."""
    # A leading "-" would read as an option on a command line (`export <session id>`) and as a formula in a
    # spreadsheet; one id in 64 starts with it, so drawing again costs nothing.
    while (an_id := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return an_id


def floats_to_json(values: Any) -> list[Any]:
    """Any float array as (nested) lists; NaN and infinities become None so the JSON stays standard."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        raise UserError("expected an array of numbers, got a scalar")
    return _nan_to_none(arr.tolist())


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value if math.isfinite(value) else None


def json_to_floats(values: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """An array, or lists of numbers (None for NaN), as float32 of exactly `shape`, else UserError naming `what`."""
    try:
        if isinstance(values, np.ndarray):
            arr = values.astype(np.float32)
        else:
            arr = np.asarray(_none_to_nan(values), dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what}: expected numbers shaped {shape}") from exc
    if arr.shape != shape:
        raise UserError(f"{what}: expected shape {shape}, got {arr.shape}")
    return arr


def _none_to_nan(value: Any) -> Any:
    if isinstance(value, list):
        return [_none_to_nan(v) for v in value]
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"not a number: {value!r}")
    return value


def check_layout(objectives: Sequence[str], measured: Sequence[bool], maximize: Sequence[bool],
                 gating: Any, transform: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a round's objective layout; returns gating (k_model,) and transform (k_model, k_model) float32."""
    k = len(objectives)
    if k == 0 or not all(isinstance(o, str) and o for o in objectives):
        raise UserError("objectives must be a non-empty list of names")
    if len(set(objectives)) != k:
        raise UserError(f"objective names must be unique: {list(objectives)}")
    for name, flags in (("measured", measured), ("maximize", maximize)):
        if len(flags) != k or not all(isinstance(f, (bool, np.bool_)) for f in flags):
            raise UserError(f"{name} must hold one true/false per objective ({k})")
    k_model = k - sum(bool(m) for m in measured)
    return json_to_floats(gating, (k_model,), "gating"), json_to_floats(transform, (k_model, k_model), "transform")


def check_messages(prompt: Any, what: str = "prompt") -> list[Message]:
    """A non-empty list of {"role", "content"} string pairs, else UserError."""
    if not isinstance(prompt, list) or not prompt:
        raise UserError(f"{what} must be a non-empty list of messages")
    for i, m in enumerate(prompt):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise UserError(f"{what}[{i}] must be an object with string 'role' and 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


def params_from_json(data: Any, what: str = "params") -> GenerationParams:
    """GenerationParams from its to_dict() form, else UserError."""
    if not isinstance(data, dict):
        raise UserError(f"{what} must be an object")
    # numpy scalars (np.int64 seeds and the like) become plain numbers, which JSON columns can hold.
    data = {k: v.item() if isinstance(v, np.generic) else v for k, v in data.items()}
    try:
        params = GenerationParams.from_dict(data)
    except (TypeError, KeyError, ValueError) as exc:
        raise UserError(f"{what}: {exc}") from exc
    for name in ("n", "max_new_tokens", "seed"):
        if isinstance(getattr(params, name), bool) or not isinstance(getattr(params, name), int):
            raise UserError(f"{what}.{name} must be an integer")
    for name in ("temperature", "top_p"):
        if isinstance(getattr(params, name), bool) or not isinstance(getattr(params, name), (int, float)):
            raise UserError(f"{what}.{name} must be a number")
    return params


def direction_to_json(direction: Direction | None) -> dict[str, Any] | None:
    """A direction as {"objectives", "weights", "method"}."""
    return None if direction is None else direction.to_dict()


def direction_from_json(data: Any, what: str = "direction") -> Direction | None:
    """A direction from direction_to_json's form, else UserError."""
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("objectives"), list) \
            or not isinstance(data.get("weights"), list):
        raise UserError(f"{what} must be an object with 'objectives' and 'weights' lists")
    try:
        return Direction(objectives=tuple(str(o) for o in data["objectives"]),
                         weights=tuple(float(w) for w in data["weights"]), method=str(data.get("method", "linear")))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what}: {exc}") from exc


def check_direction_fits(direction: Direction, objectives: Sequence[str], what: str = "direction") -> None:
    """Refuse a direction naming objectives the round does not have, or naming one twice."""
    twice = sorted({o for o in direction.objectives if direction.objectives.count(o) > 1})
    if twice:
        raise UserError(f"{what} names {twice} more than once: one weight per objective")
    unknown = [o for o in direction.objectives if o not in objectives]
    if unknown:
        raise UserError(f"{what} names objectives {unknown} that the round does not have ({list(objectives)})")


def candidate_from_row(row: CandidateRow, k: int) -> Candidate:
    """A stored candidate; rewards (k,) float32."""
    return Candidate(index=row.idx, text=row.text, rewards=json_to_floats(row.rewards, (k,), "rewards"),
                     score=math.nan if row.score is None else float(row.score), n_tokens=row.n_tokens,
                     gen_seconds=float(row.gen_seconds))


def finite_or_none(value: float) -> float | None:
    """A float for a JSON/SQL column, None where it is NaN or infinite."""
    value = float(value)
    return value if math.isfinite(value) else None


def round_from_row(row: RoundRow, candidates: Sequence[CandidateRow], direction: Any) -> Round:
    """A stored round with the given candidates and the JSON of its latest direction (or None)."""
    k = len(row.objectives)
    k_model = k - sum(bool(m) for m in row.measured)
    return Round(
        round_id=row.id, session_id=row.session.id, prompt=[dict(m) for m in row.prompt],
        params=GenerationParams.from_dict(row.params), generator_id=row.generator_id,
        reward_model_id=row.reward_model_id,
        objectives=tuple(row.objectives), measured=tuple(bool(m) for m in row.measured),
        maximize=tuple(bool(m) for m in row.maximize),
        gating=json_to_floats(row.gating, (k_model,), "gating"),
        transform=json_to_floats(row.transform, (k_model, k_model), "transform"),
        candidates=tuple(candidate_from_row(c, k) for c in candidates), created_at=row.created_at,
        direction=direction_from_json(direction), status=row.status, error=row.error)


def preview(prompt: list[Message]) -> str:
    """The last user turn, cut to PREVIEW_CHARS for listings."""
    text = " ".join(prompt_text(prompt).split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def vote_from_row(row: VoteRow) -> Vote:
    """A stored vote."""
    return Vote(vote_id=row.id, session_id=row.session.id, round_id=row.round.id, a_index=row.a_index,
                b_index=row.b_index, outcome=row.outcome, direction=direction_from_json(row.direction),
                created_at=row.created_at)


def vote_record(row: VoteRow) -> dict[str, Any]:
    """A vote with everything needed to use it as preference data, JSON-friendly."""
    chosen = {"a": "a", "b": "b"}.get(row.outcome)  # tie / both_bad choose nothing
    return {
        "vote_id": row.id, "session_id": row.session.id, "round_id": row.round.id, "created_at": row.created_at,
        "outcome": row.outcome, "chosen": chosen,
        "prompt": [dict(m) for m in row.prompt],
        "a": {"index": row.a_index, "text": row.a_text, "rewards": list(row.a_rewards)},
        "b": {"index": row.b_index, "text": row.b_text, "rewards": list(row.b_rewards)},
        "objectives": list(row.objectives), "maximize": list(row.maximize), "direction": row.direction,
        "params": dict(row.params), "generator_id": row.generator_id, "reward_model_id": row.reward_model_id,
    }
