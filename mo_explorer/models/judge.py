"""A served chat model as the reward model: it rates each response on a rubric's criteria, one objective each.

`judge:<base URL>` names any OpenAI-compatible server. Each response is one request asking for a JSON object of
ratings; servers that support structured output (vLLM, SGLang: `response_format` with a JSON schema) are held to
it, others (transformers serve ignores it) answer free text, which is parsed as well as it can be. A criterion the
answer does not rate gets the scale's midpoint (reward 0) and is counted, so a weak judge shows as such instead of
failing rounds. The output has ArmoRM's shape: rewards (n, k), a uniform gate, the identity transform.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import openai

from mo_explorer import errors, schema
from mo_explorer.models import openai_backend

log = logging.getLogger(__name__)

PREFIX = "judge:"
UNPARSED = schema.UNRATED  # extras key: how many criteria of each response were not rated (n,)
MAX_PARALLEL = 8
MAX_RATING_TOKENS = 96  # a JSON object of a few small numbers


@dataclass(frozen=True)
class Rubric:
    """Criteria (one objective each, in order) with their descriptions, and the rating scale."""

    names: tuple[str, ...]
    descriptions: tuple[str, ...]
    low: float
    high: float
    instructions: str

    @classmethod
    def load(cls, path: str | Path) -> Rubric:
        """Read and check a rubric JSON file; ModelError saying what is wrong otherwise."""
        try:
            raw = json.loads(Path(path).expanduser().read_text())
            criteria = raw["criteria"]
            names = tuple(str(c["name"]) for c in criteria)
            descriptions = tuple(str(c.get("description", "")) for c in criteria)
            low, high = (float(x) for x in raw.get("scale", (1, 10)))
            instructions = str(raw.get("instructions", ""))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise errors.ModelError(f"judge rubric {path}: {exc!r}; expected {{'criteria': [{{'name', "
                                    "'description'}}, ...], 'scale': [low, high], 'instructions': text}") from exc
        if not names or len(set(names)) != len(names) or not all(re.fullmatch(r"[A-Za-z_][\w-]*", n) for n in names):
            raise errors.ModelError(f"judge rubric {path}: criteria need distinct names of letters, digits, _ or -")
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise errors.ModelError(f"judge rubric {path}: the scale must be two finite numbers, low < high")
        return cls(names, descriptions, low, high, instructions)

    def json_schema(self) -> dict:
        """The JSON schema of an answer: one number in the scale per criterion."""
        number = {"type": "integer", "minimum": int(self.low), "maximum": int(self.high)}
        return {"type": "object", "properties": {n: number for n in self.names}, "required": list(self.names),
                "additionalProperties": False}

    def messages(self, prompt: schema.Prompt, response: str) -> list[dict]:
        """The chat request that asks for one response's ratings."""
        criteria = "\n".join(f"- {n}: {d}" for n, d in zip(self.names, self.descriptions))
        system = (f"{self.instructions}\nCriteria (rate each from {self.low:g} to {self.high:g}):\n{criteria}\n"
                  f"Answer with JSON only: {{{', '.join(f'{chr(34)}{n}{chr(34)}: <rating>' for n in self.names)}}}")
        conversation = "\n".join(f"{m['role']}: {m['content']}" for m in schema.as_messages(prompt))
        return [{"role": "system", "content": system},
                {"role": "user", "content": f"Conversation:\n{conversation}\n\nResponse to rate:\n{response}"}]

    def parse(self, text: str) -> tuple[np.ndarray, int]:
        """Ratings mapped to [-1, 1] (k,) and how many criteria were missing or unreadable (set to 0, the middle)."""
        found = _json_object(text) or {}
        values = np.zeros(len(self.names), np.float32)
        missing = 0
        for j, name in enumerate(self.names):
            value = _number(found.get(name)) if name in found else _number(_loose(text, name))
            if value is None:
                missing += 1
                continue
            middle, half = (self.high + self.low) / 2, (self.high - self.low) / 2
            values[j] = float(np.clip((value - middle) / half, -1.0, 1.0))
        return values, missing


def _json_object(text: str) -> dict | None:
    """The first JSON object in text (bare, in a code fence, or inside prose)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text[match.start():])
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _loose(text: str, name: str) -> str | None:
    """'name: 7' or 'Name = 7/10' in free text."""
    match = re.search(rf"{re.escape(name)}\W{{0,4}}\s*[:=]?\s*(-?\d+(?:\.\d+)?)", text, re.IGNORECASE)
    return match.group(1) if match else None


def _number(value) -> float | None:
    """A finite rating from a JSON value or a string; None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class JudgeRewardModel:
    """Rewards from a chat model's ratings: one objective per rubric criterion, uniform gate, identity transform."""

    def __init__(self, client: openai.OpenAI, model: str, rubric: Rubric):
        self.client = client
        self.model = model
        self.rubric = rubric
        self.url = str(client.base_url).rstrip("/")
        self.model_id = f"judge:{model}"
        self.objectives = rubric.names
        self.structured: bool | None = None  # whether the server takes response_format; learnt on first refusal
        self.ratings = 0  # criteria asked for, over the process's lifetime
        self.unparsed = 0  # of those, how many the judge's answers did not rate (set to the middle)
        self.last_answers: list[str] = []  # the judge's raw answers of the last call, for inspection
        self._count_lock = threading.Lock()

    @classmethod
    def load(cls, spec: str, model: str, rubric_path: str, api_key: str, timeout: float) -> JudgeRewardModel:
        """Connect to 'judge:<base URL>' with the rubric file's criteria."""
        rubric = Rubric.load(rubric_path)
        client = openai_backend.make_client(openai_backend.base_url(spec, PREFIX), api_key, timeout)
        name = openai_backend.served_model(client, model, "MO_EXPLORER_JUDGE_MODEL")
        log.info("judge: %s at %s on %s", name, client.base_url, ", ".join(rubric.names))
        return cls(client, name, rubric)

    def score(self, prompt: schema.Prompt, responses: Sequence[str]) -> schema.RewardOutput:
        """Ratings of n responses: rewards (n, k) in [-1, 1], gating (k,) uniform, transform identity, score (n,)."""
        k = len(self.objectives)
        with ThreadPoolExecutor(max_workers=max(1, min(len(responses), MAX_PARALLEL))) as pool:
            answers = list(pool.map(lambda r: self._rate(prompt, r), responses))
        self.last_answers = answers
        rewards = np.zeros((len(responses), k), np.float32)
        missing = np.zeros(len(responses), np.float32)
        for i, text in enumerate(answers):
            rewards[i], missing[i] = self.rubric.parse(text)
        with self._count_lock:
            self.ratings += k * len(responses)
            self.unparsed += int(missing.sum())
        if missing.any():
            log.warning("judge %s left %d of %d ratings unreadable (set to the middle of the scale); %d of %d so far",
                        self.model, int(missing.sum()), k * len(responses), self.unparsed, self.ratings)
        gating = np.full(k, 1.0 / k, np.float32)
        score = (rewards @ gating).astype(np.float32)  # identity transform
        return schema.RewardOutput(self.objectives, rewards, gating, np.eye(k, dtype=np.float32), score,
                                   {UNPARSED: missing})

    def _rate(self, prompt: schema.Prompt, response: str) -> str:
        """The judge's answer for one response (structured output when the server supports it)."""
        request = {"model": self.model, "messages": self.rubric.messages(prompt, response), "temperature": 0.0,
                   "max_tokens": MAX_RATING_TOKENS}
        try:
            if self.structured is not False:
                try:
                    answer = self.client.chat.completions.create(**request, response_format={
                        "type": "json_schema",
                        "json_schema": {"name": "ratings", "schema": self.rubric.json_schema(), "strict": True}})
                    self.structured = True
                    return answer.choices[0].message.content or "" if answer.choices else ""
                except openai.BadRequestError:
                    # Servers without guided decoding refuse the field with a 400: ask again in plain text.
                    log.info("judge server %s refused response_format; asking for JSON in the prompt only", self.url)
                    self.structured = False
            answer = self.client.chat.completions.create(**request)
            return answer.choices[0].message.content or "" if answer.choices else ""
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise errors.ModelError(f"the judge failed: {openai_backend.describe(exc, self.url)}") from exc
