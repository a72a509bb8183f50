"""Which loader serves which model: a small registry from model family to loader (reward-bench style).

Families, tried in order:
- `judge`: 'judge:<base URL>', an OpenAI-compatible chat model rating each response on a rubric's criteria;
- `embedded`: the head trained for this app, shipped in data/reward_head (or any head directory);
- `official-armo`: RLHFlow/ArmoRM-Llama3-8B-v0.1 or a local copy, loaded without trust_remote_code;
- `sequence-classification`: any other AutoModelForSequenceClassification reward model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mo_explorer import config, errors, model_thread
from mo_explorer.models import armo, judge, official_armo, openai_backend
from mo_explorer.models import device as devices
from mo_explorer.models.generator import Generator
from mo_explorer.models.reward import RewardModel, SequenceClassificationRewardModel

log = logging.getLogger(__name__)

EMBEDDED = "embedded"


@model_thread.runs_on_model_thread
def load_generator(settings: config.Settings) -> Generator | openai_backend.OpenAIGenerator:
    """The generator named in settings.models, on its device and dtype."""
    m = settings.models
    if m.generator.startswith(openai_backend.PREFIX):
        return openai_backend.OpenAIGenerator.load(m.generator, m.openai_model, m.openai_api_key, m.openai_timeout)
    devices.configure_threads(m.threads)
    return Generator.load(m.generator, cache_dir=m.cache_dir, device=m.device, dtype=m.generator_dtype,
                          sampler=m.sampler, threads=m.threads, batch_rows=m.batch_rows)


@dataclass(frozen=True)
class RewardFamily:
    """A family of reward models: how to recognise a name and how to load it."""

    name: str
    matches: Callable[[str, Path], bool]  # (requested name, embedded head dir) -> bool
    load: Callable[[str, config.ModelSettings, Path], RewardModel]


def _display(path: Path) -> str:
    """A path as the user would type it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(config.REPO_ROOT))
    except ValueError:
        return str(path)


def _load_head(head_dir: Path, m: config.ModelSettings) -> RewardModel:
    """The app's own ArmoRM-style head over its frozen backbone."""
    if not (head_dir / armo.HEAD_WEIGHTS).is_file():
        where = _display(head_dir)
        raise errors.ModelError(
            f"No trained reward head at {where}. Train one with: python -m mo_explorer train "
            f"--ratings ../shared/data/train/ratings.jsonl.gz --pairs ../shared/data/train/pairs.jsonl.gz "
            f"--out {where}")
    # Imported here: the head model pulls in its feature extractor, which only this family needs.
    from mo_explorer.models.head_reward import HeadRewardModel

    return HeadRewardModel.load(head_dir, cache_dir=m.cache_dir, device=m.device, dtype=m.reward_dtype)


REWARD_FAMILIES: tuple[RewardFamily, ...] = (
    RewardFamily("judge", lambda name, head_dir: name.startswith(judge.PREFIX),
                 lambda name, m, head_dir: judge.JudgeRewardModel.load(
                     name, m.judge_model, m.judge_rubric, m.openai_api_key, m.openai_timeout)),
    RewardFamily("embedded", lambda name, head_dir: name == EMBEDDED,
                 lambda name, m, head_dir: _load_head(head_dir, m)),
    RewardFamily("head-dir", lambda name, head_dir: armo.is_head_dir(Path(name).expanduser()),
                 lambda name, m, head_dir: _load_head(Path(name).expanduser(), m)),
    RewardFamily("official-armo", lambda name, head_dir: official_armo.is_official_armo(name),
                 lambda name, m, head_dir: official_armo.OfficialArmoRewardModel.load(
                     name, cache_dir=m.cache_dir, device=m.device, dtype=m.reward_dtype)),
    RewardFamily("sequence-classification", lambda name, head_dir: True,
                 lambda name, m, head_dir: SequenceClassificationRewardModel.load(
                     name, cache_dir=m.cache_dir, device=m.device, dtype=m.reward_dtype)),
)


def reward_family(name: str, head_dir: str | Path = config.EMBEDDED_HEAD_DIR) -> str:
    """Name of the family that will load the reward model `name`."""
    return next(f.name for f in REWARD_FAMILIES if f.matches(name, Path(head_dir)))


@model_thread.runs_on_model_thread
def load_reward_model(settings: config.Settings, head_dir: str | Path = config.EMBEDDED_HEAD_DIR) -> RewardModel:
    """The reward model named in settings.models.reward_model, through its family's loader."""
    name = settings.models.reward_model
    family = next(f for f in REWARD_FAMILIES if f.matches(name, Path(head_dir)))
    log.info("loading reward model %s as %s", name, family.name)
    return family.load(name, settings.models, Path(head_dir))
