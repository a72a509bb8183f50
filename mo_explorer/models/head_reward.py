"""The embedded reward model: a frozen backbone's features read by an ArmoRM-style head directory.

score = sum(gating * (rewards @ transform), axis=1), with
- rewards[:, j] = regression_layer(response state) + offset_j for the learned objectives,
- measured objectives filled from the text itself: `verbosity` = standardised log(1 + words) and, when the head
  has it, `likelihood` = the standardised mean token log-prob of the response under the generator
  (SmolLM2-135M-Instruct), and `quality` = the standardised score of the trained trunk (models/trunk.py: MiniLM's
  top layers fine-tuned on pairs, stored beside the head as trunk.safetensors), all written in config.json under
  extra["measured"],
- gating from the gate on the prompt state (prompt only, as in ArmoRM).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mo_explorer import model_thread, schema
from mo_explorer.errors import ModelError
from mo_explorer.models.armo import ArmoHead, is_head_dir
from mo_explorer.models.features import FeatureSpec, GroupFeatures, load_extractor

log = logging.getLogger(__name__)

LIKELIHOOD = "likelihood"
QUALITY_SOURCE = "trunk"
VERBOSITY = "verbosity"


def word_count(text: str) -> int:
    """Whitespace words: the backbone-independent length behind the verbosity objective."""
    return len(text.split())


def measured_value(name: str, stats: dict, texts: Sequence[str], logprob: np.ndarray | None,
                   quality: np.ndarray | None = None) -> np.ndarray:
    """A measured objective (n,) float32, standardised with the head's stored mean and std."""
    if stats["source"] == "log_words":
        raw = np.log1p(np.array([word_count(t) for t in texts], np.float64))
    elif stats["source"] == "mean_logprob":
        if logprob is None:
            raise ModelError(f"objective {name!r} needs the mean log-prob but none was computed")
        raw = np.asarray(logprob, np.float64)
    elif stats["source"] == QUALITY_SOURCE:
        if quality is None:
            raise ModelError(f"objective {name!r} needs the trunk's quality but none was computed")
        raw = np.asarray(quality, np.float64)
    else:
        raise ModelError(f"unknown measured source {stats['source']!r} for objective {name!r}")
    return ((raw - stats["mean"]) / stats["std"]).astype(np.float32)


class HeadRewardModel:
    """Backbone features -> ArmoHead -> schema.RewardOutput (rewards, gating, transform, score)."""

    def __init__(self, head: ArmoHead, extractor, likelihood_extractor=None, head_dir: str = "",
                 likelihood_loader=None, trunk=None):
        self.head, self.extractor = head, extractor
        self.trunk = trunk  # models.trunk.TrunkScorer on the extractor's MiniLM, when the head has `quality`
        self._likelihood_extractor = likelihood_extractor  # None until the first text the app did not generate
        # Loaded on first use: rounds written by the same model hand over their own token log-probs, so the app
        # needs this second (float32) copy of the generator only for text it did not generate (import, `score`).
        self._likelihood_loader = likelihood_loader
        self.head_dir = head_dir
        config = head.config
        self.objectives: tuple[str, ...] = tuple(config.objectives)
        self.spec = FeatureSpec.from_json(config.backbone)
        self.model_id = f"embedded-head:{self.spec.name}"
        extra = config.extra or {}
        self.offset = np.asarray(extra.get("reward_offset", [0.0] * len(self.objectives)), np.float32)
        self.measured: dict[str, dict] = extra.get("measured", {})
        # Held-out, length-balanced accuracy of the score and of each objective (train --validate loso): the page
        # shows it beside each objective's name.
        self.trust: dict = extra.get("trust", {})
        # A spec may capture several layers (one pass shared with the likelihood); the head reads `head_layer`.
        layer = extra.get("head_layer", self.spec.layers[-1])
        if layer not in self.spec.layers:
            raise ModelError(f"head_layer {layer} is not among the backbone's captured layers {self.spec.layers}")
        self.layer_index = self.spec.layers.index(layer)
        self.feature_cache = None  # optional training.feature_cache.FeatureCache-like lookup for evaluations
        lik = self.measured.get(LIKELIHOOD)
        lik_spec = FeatureSpec.from_json(lik["model"]) if lik is not None and "model" in lik else None
        # Which model's log-probs the likelihood objective reads, and over how many response tokens.
        self.likelihood_model: str | None = lik_spec.name if lik_spec is not None else None
        self.likelihood_tokens: int = lik_spec.max_response_tokens if lik_spec is not None else 0

    @property
    def likelihood_extractor(self):
        """The model that reads a response's log-probs, loaded on first use (None when the head has none)."""
        if self._likelihood_extractor is None and self._likelihood_loader is not None:
            self._likelihood_extractor = self._likelihood_loader()
            self._likelihood_loader = None
        return self._likelihood_extractor

    @likelihood_extractor.setter
    def likelihood_extractor(self, extractor) -> None:
        self._likelihood_extractor, self._likelihood_loader = extractor, None

    @classmethod
    def load(cls, head_dir: str | Path, cache_dir: str, device: str = "auto", dtype: str = "float32"
             ) -> HeadRewardModel:
        """Read a head directory and load the backbone it names (and the likelihood model if it has one)."""
        if not is_head_dir(head_dir):
            raise ModelError(f"{head_dir} is not a reward head directory (no mo-explorer config.json); "
                             "train one with `python -m mo_explorer train`")
        head = ArmoHead.load(head_dir)
        spec = FeatureSpec.from_json(head.config.backbone)
        extractor = load_extractor(spec, cache_dir, device, dtype)
        lik = (head.config.extra or {}).get("measured", {}).get(LIKELIHOOD)
        lik_extractor, loader = None, None
        if lik is not None:
            lik_spec = FeatureSpec.from_json(lik["model"])
            if lik_spec == spec:
                lik_extractor = extractor
            else:
                def loader():
                    log.info("loading %s for the likelihood of text the generator did not write", lik_spec.name)
                    return load_extractor(lik_spec, cache_dir, device, dtype)
        trunk = None
        if any(m.get("source") == QUALITY_SOURCE for m in (head.config.extra or {}).get("measured", {}).values()):
            from mo_explorer.models.trunk import WEIGHTS_FILE, TrunkScorer
            if not (Path(head_dir) / WEIGHTS_FILE).exists():
                raise ModelError(f"{head_dir} has a `quality` objective but no {WEIGHTS_FILE} (its trained trunk)")
            trunk = TrunkScorer.on_features(head_dir, extractor)
        log.info("loaded reward head %s on %s%s", head_dir, spec.name, " with its trained trunk" if trunk else "")
        return cls(head, extractor, lik_extractor, str(head_dir), likelihood_loader=loader, trunk=trunk)

    def _features(self, extractor, prompt: schema.Prompt, responses: Sequence[str], full: bool) -> GroupFeatures:
        if self.feature_cache is not None:
            got = self.feature_cache(extractor.spec, prompt, responses)
            if got is not None:
                return got
        encode = extractor.encode_full if full else extractor.encode
        return encode(prompt, list(responses))

    def features(self, prompt: schema.Prompt, responses: Sequence[str], full: bool = False,
                 mean_logprob: np.ndarray | None = None):
        """(prompt state (Dg,), response states (n, D), mean log-prob (n,) or None) at the head's layer.

        mean_logprob (n,), when given, is the likelihood model's own log-prob of each response (measured while
        generating it): no second pass reads the responses.
        """
        g = self._features(self.extractor, prompt, responses, full)
        logprob = None
        if mean_logprob is not None and self.likelihood_model is not None:
            logprob = np.asarray(mean_logprob, np.float32)
        elif self.likelihood_model is not None and self.likelihood_extractor is not None:
            lik = g if self.likelihood_extractor is self.extractor else self._features(
                self.likelihood_extractor, prompt, responses, full)
            logprob = lik.mean_logprob
        return g.prompt_states[self.layer_index], g.response_states[:, self.layer_index], logprob

    @torch.no_grad()
    def quality(self, prompt: schema.Prompt, responses: Sequence[str]) -> np.ndarray | None:
        """The trained trunk's raw quality (n,) of each response, or None when the head has no trunk."""
        if self.trunk is None:
            return None
        return self.trunk.encode(prompt, list(responses))[1]

    @torch.no_grad()
    def score_features(self, prompt_state: np.ndarray, response_states: np.ndarray, texts: Sequence[str],
                       logprob: np.ndarray | None, quality: np.ndarray | None = None) -> schema.RewardOutput:
        """RewardOutput from features: prompt_state (Dg,), response_states (n, D), texts n, logprob (n,), the
        trunk's raw quality (n,) when the head has it."""
        states = torch.tensor(np.asarray(response_states, np.float32))
        rewards = self.head.regression_layer(states).numpy() + self.offset
        for name, stats in self.measured.items():
            rewards[:, self.objectives.index(name)] = measured_value(name, stats, texts, logprob, quality)
        gating = self.head.gating(torch.tensor(np.asarray(prompt_state, np.float32))[None]).numpy()[0]
        transform = self.head.reward_transform_matrix.detach().numpy().astype(np.float32)
        rewards = rewards.astype(np.float32)
        score = np.sum(gating[None] * (rewards @ transform), axis=1).astype(np.float32)
        extras = {}
        if logprob is not None:
            extras[schema.MEASURED_LOGPROB] = np.asarray(logprob, np.float32)
        return schema.RewardOutput(self.objectives, rewards, gating.astype(np.float32), transform, score, extras)

    @model_thread.runs_on_model_thread
    def score(self, prompt: schema.Prompt, responses: Sequence[str],
              mean_logprob: np.ndarray | None = None) -> schema.RewardOutput:
        """Score n responses to one prompt, encoding the prompt once (KV cache shared by the responses).

        mean_logprob (n,): the likelihood model's log-prob of each response, when the caller measured it already.
        """
        if not responses:
            k = len(self.objectives)
            return schema.RewardOutput(self.objectives, np.zeros((0, k), np.float32), np.zeros(k, np.float32),
                                       np.eye(k, dtype=np.float32), np.zeros(0, np.float32))
        p, r, lp = self.features(prompt, responses, mean_logprob=mean_logprob)
        return self.score_features(p, r, responses, lp, self.quality(prompt, responses))

    @model_thread.runs_on_model_thread
    def score_full_pass(self, prompt: schema.Prompt, responses: Sequence[str]) -> schema.RewardOutput:
        """Score with one full forward per (prompt, response), as in ArmoRM's model card (reference path)."""
        p, r, lp = self.features(prompt, responses, full=True)
        return self.score_features(p, r, responses, lp, self.quality(prompt, responses))

    def coefficients(self, prompt_gating: np.ndarray) -> np.ndarray:
        """Per-objective coefficients gating @ T.T (k,): score == sum(rewards * coefficients)."""
        transform = self.head.reward_transform_matrix.detach().numpy()
        return (prompt_gating @ transform.T).astype(np.float32)


def bradley_terry_probability(score_a: float, score_b: float) -> float:
    """P(a beats b) = sigmoid(score_a - score_b)."""
    return 1.0 / (1.0 + math.exp(-(score_a - score_b)))
