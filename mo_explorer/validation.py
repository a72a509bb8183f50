"""The boundary: every value from outside (API, page events, CLI, imported files) is checked here, once per input
type, before it reaches the core.

Each input type is a pydantic model. The checks the core relies on are declared once: numbers are finite,
integers are whole numbers (2.5 and True are refused, 4.0 is 4), text is valid UTF-8 (no lone surrogates),
ids look like the ids this app hands out, and every size is bounded. A refusal is a UserError that names the
field, never echoes the value (it may be HTML or megabytes long), and never carries a traceback.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from mo_explorer.config import CANDIDATES_CEILING
from mo_explorer.errors import UserError
from mo_explorer.schema import Direction, GenerationParams, Vote

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")  # convert.new_id(): 22 URL-safe characters; the column holds 32
MAX_TEXT_CHARS = 1_000_000  # any one text: a prompt, a response, an error; the settings' limits are lower
MAX_NAME_CHARS = 128  # an objective, role or model-id-like name
MAX_OBJECTIVES = 64
MAX_INDEX = 1_000_000  # a candidate index
MAX_SEED = 2**32 - 1  # what every seeding function takes
MAX_ANGLE = 1e9  # degrees; any finite angle would do, this keeps cos/sin exact enough to mean something
MAX_ERRORS_SHOWN = 3

Model = TypeVar("Model", bound=BaseModel)


# ----- one checker per kind of value ----------------------------------------------------------------------
def _whole(value: Any) -> int:
    """An int, or a float with no fractional part (sliders send 4.0); never a bool, a string or None."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError("must be a whole number, not true/false")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise ValueError("must be a whole number")


def _index(value: Any) -> int:
    """A candidate index: a whole number, or its digits as text (a menu that accepts typed values)."""
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 7:
        return int(value.strip())
    return _whole(value)


def _finite(value: Any) -> float:
    """A finite int or float; never a bool, NaN, an infinity or a string."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError("must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("must be a finite number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def _text(value: Any) -> str:
    """A str that encodes as UTF-8 (a lone surrogate does not, and no database would store it)."""
    if not isinstance(value, str):
        raise ValueError("must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (it holds a lone surrogate)") from None
    return value


def _id(value: Any) -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise ValueError("must be an id as this app gives them (1-32 letters, digits, '-' or '_')")
    return value


def _id_or_empty(value: Any) -> str:
    """An id, or "" (also for None) where an empty value asks for a new session."""
    return "" if value is None or value == "" else _id(value)


Int = Annotated[int, BeforeValidator(_whole)]
Index = Annotated[int, BeforeValidator(_index), Field(ge=0, le=MAX_INDEX)]
Float = Annotated[float, BeforeValidator(_finite)]
Text = Annotated[str, BeforeValidator(_text), Field(max_length=MAX_TEXT_CHARS)]
Name = Annotated[str, BeforeValidator(_text), Field(min_length=1, max_length=MAX_NAME_CHARS)]
Id = Annotated[str, BeforeValidator(_id)]
IdOrEmpty = Annotated[str, BeforeValidator(_id_or_empty)]
Method = Literal["linear", "tchebycheff"]
Outcome = Literal[Vote.OUTCOMES]  # type: ignore[valid-type]
ExportFormat = Literal["trl", "json", "csv"]


class Input(BaseModel):
    """Base of every input type: unknown fields are refused, values are frozen once checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EventInput(Input):
    """Data a page script sends with a custom event; fields it adds that the server does not use are dropped."""

    model_config = ConfigDict(extra="ignore", frozen=True)


# ----- generation ------------------------------------------------------------------------------------------
class Steer(Input):
    """The direction a steered round is written along: weights over named objectives."""

    objectives: list[Name] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    weights: list[Float] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    method: Method = "linear"

    def direction(self) -> Direction:
        """The Direction it names (one weight per objective, not all zero)."""
        if len(self.objectives) != len(self.weights):
            raise UserError("steer: one weight per objective is needed")
        return _direction(self.objectives, self.weights, self.method)


class Params(Input):
    """Sampling parameters of one round (the settings' limits are checked by the Explorer on top)."""

    n: Int = Field(ge=1, le=CANDIDATES_CEILING)
    max_new_tokens: Int = Field(ge=1, le=100_000)
    temperature: Float = Field(ge=0.0, le=2.0)
    top_p: Float = Field(gt=0.0, le=1.0)
    seed: Int = Field(0, ge=0, le=MAX_SEED)
    steer: Steer | None = None  # a steered round (decoding guided along this direction)

    def params(self) -> GenerationParams:
        """As the core's GenerationParams."""
        plain = self.model_dump(include=set(Params.model_fields) - {"steer"})
        return GenerationParams(**plain, steer=self.steer.direction() if self.steer is not None else None)


class Message(Input):
    """One chat message."""

    role: Name
    content: Text


class GenerateRequest(Params):
    """`/generate` and the page's Generate: a prompt, parameters, and the session (empty: a new one)."""

    prompt: Text
    session_id: IdOrEmpty = ""


# ----- rounds, directions, votes -----------------------------------------------------------------------
class RoundRef(Input):
    """A round named together with the session that owns it."""

    session_id: Id
    round_id: Id


class RerankRequest(RoundRef):
    """`/rerank`: weights over objectives (default: the round's first ones) or an angle over the first two."""

    weights: list[Float] | None = Field(None, max_length=MAX_OBJECTIVES)
    objectives: list[Name] | None = Field(None, max_length=MAX_OBJECTIVES)
    method: Method = "linear"
    angle: Float | None = Field(None, ge=-MAX_ANGLE, le=MAX_ANGLE)


class DirectionData(EventInput):
    """A direction as the widget describes it: weights over named objectives."""

    objectives: list[Name] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    weights: list[Float] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    method: Method = "linear"

    def direction(self) -> Direction:
        """The Direction it describes; objectives with a zero weight are left out."""
        if len(self.objectives) != len(self.weights):
            raise UserError("direction: one weight per objective is needed")
        pairs = [(n, w) for n, w in zip(self.objectives, self.weights) if w != 0.0]
        if not pairs:
            raise UserError("direction: the weights are all zero")
        names, weights = zip(*pairs)
        return _direction(names, weights, self.method)


class SelectEvent(EventInput):
    """The widget's `select` event: a point or a card clicked."""

    round_id: Id
    index: Index


class Axes(Input):
    """The plot's axis choices (names of the round's columns; unknown ones fall back to the defaults)."""

    x: Name | None = None
    y: Name | None = None


class Pair(Input):
    """Two candidates of a round, for a comparison or a vote."""

    a: Index
    b: Index


class VoteRequest(RoundRef, Pair):
    """`/vote`: a judgement between candidates a and b of a round of this session."""

    outcome: Outcome


class ExportRequest(Input):
    """`/export`: a session in one of the export formats."""

    session_id: Id
    fmt: ExportFormat


class Selected(Input):
    """The last candidates clicked (the page's own state)."""

    indices: list[Index] = Field(max_length=2)


# ----- helpers -------------------------------------------------------------------------------------------
def check(model: type[Model], data: Any = None, /, where: str = "", **fields: Any) -> Model:
    """`model` validated from a mapping or from keyword fields; UserError naming each bad field otherwise.

    `where` prefixes the field names, for a model checked as part of something larger ("prompt[2]").
    """
    try:
        return model.model_validate(fields if data is None else data)
    except ValidationError as exc:
        raise UserError(describe(exc, where)) from None


def describe(exc: ValidationError, where: str = "") -> str:
    """The first few problems as 'field: what is wrong'; values are never echoed."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:MAX_ERRORS_SHOWN]:
        loc, message = err["loc"], err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":  # the unknown name is the caller's text: not repeated
            loc, message = loc[:-1], "holds a field it does not take"
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
        problems.append(f"{(where + field).lstrip('.') or 'request'}: {message}")
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def session_id(value: Any, what: str = "session_id") -> str:
    """A well-formed session id, else UserError."""
    try:
        return _id(value)
    except ValueError as exc:
        raise UserError(f"{what}: {exc}") from None


def text(value: Any, what: str) -> str:
    """Valid UTF-8 text of at most MAX_TEXT_CHARS characters, else UserError naming `what`."""
    try:
        checked = _text(value)
    except ValueError as exc:
        raise UserError(f"{what}: {exc}") from None
    if len(checked) > MAX_TEXT_CHARS:
        raise UserError(f"{what}: longer than {MAX_TEXT_CHARS} characters")
    return checked


def optional_session_id(value: Any) -> str | None:
    """A well-formed session id, or None for a missing or malformed one (a URL anyone can type)."""
    try:
        return _id(value)
    except ValueError:
        return None


def messages(prompt: Any) -> list[dict[str, str]]:
    """A prompt (text or chat messages) as checked chat messages, else UserError."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": text(prompt, "prompt")}]
    if not isinstance(prompt, list) or not 1 <= len(prompt) <= 256:
        raise UserError("prompt: must be text or a list of 1-256 {'role', 'content'} messages")
    return [check(Message, m, where=f"prompt[{i}]").model_dump() for i, m in enumerate(prompt)]


def params(value: GenerationParams) -> GenerationParams:
    """GenerationParams whose every field is checked (a caller may have built it from anything)."""
    if not isinstance(value, GenerationParams):
        raise UserError("params: must be generation parameters")
    return check(Params, value.to_dict()).params()


def _direction(objectives, weights, method: str) -> Direction:
    if len(set(objectives)) != len(objectives):
        raise UserError("direction: objectives must not repeat")
    try:
        return Direction(tuple(objectives), tuple(weights), method)
    except ValueError as exc:
        raise UserError(f"direction: {exc}") from None


def direction(objectives: list[str], weights: list[float], method: str = "linear") -> Direction:
    """A checked Direction from already-checked names and finite weights."""
    return _direction(objectives, weights, method)


# ----- session files (import) ----------------------------------------------------------------------------
# A session file is checked whole, here, before anything is written: a value the database could not hold
# (a lone surrogate, an integer over 64 bits) or that would break a page later (NaN, an infinity) is refused
# with the path to it, so a stored session always opens.
SESSION_FILE_FORMAT = "mo-explorer-session"
SESSION_FILE_VERSION = 1
MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_STORED_MAGNITUDE = 1e30  # rewards and gate values: far inside float32, so none becomes an infinity when read
ROUND_STATUSES = ("running", "complete", "failed", "cancelled")


def _timestamp(value: Any) -> str:
    checked = _text(value)
    if len(checked) > 40:
        raise ValueError("must be an ISO-8601 time")
    try:
        datetime.fromisoformat(checked)
    except ValueError:
        raise ValueError("must be an ISO-8601 time") from None
    return checked


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


Stored = Annotated[Float, Field(ge=-MAX_STORED_MAGNITUDE, le=MAX_STORED_MAGNITUDE)]
Timestamp = Annotated[str, BeforeValidator(_timestamp)]
Flag = Annotated[bool, BeforeValidator(_strict_bool)]
LongName = Annotated[str, BeforeValidator(_text), Field(max_length=512)]


class FileInput(BaseModel):
    """Base of a session file's parts: fields this build does not know are dropped, never stored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class FileDirection(FileInput):
    objectives: list[Name] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    weights: list[Float] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    method: Method = "linear"


class FileDirectionEntry(FileInput):
    created_at: Timestamp
    direction: FileDirection


class FileCandidate(FileInput):
    index: Index
    text: Text
    rewards: list[Stored] = Field(max_length=MAX_OBJECTIVES)
    score: Stored
    n_tokens: Int = Field(ge=0, le=10_000_000)
    gen_seconds: Float = Field(ge=0.0, le=1e7)


class FileRound(FileInput):
    round_id: Name
    created_at: Timestamp
    prompt: list[Message] = Field(min_length=1, max_length=256)
    params: Params
    generator_id: LongName
    reward_model_id: LongName
    objectives: list[Name] = Field(min_length=1, max_length=MAX_OBJECTIVES)
    measured: list[Flag] = Field(max_length=MAX_OBJECTIVES)
    maximize: list[Flag] = Field(max_length=MAX_OBJECTIVES)
    gating: list[Stored] = Field(max_length=MAX_OBJECTIVES)
    transform: list[Annotated[list[Stored], Field(max_length=MAX_OBJECTIVES)]] = Field(max_length=MAX_OBJECTIVES)
    status: Literal[ROUND_STATUSES]  # type: ignore[valid-type]
    error: Text | None = None
    candidates: list[FileCandidate] = Field(max_length=1024)
    directions: list[FileDirectionEntry] = Field(default_factory=list, max_length=100_000)


class FileVote(FileInput):
    round_id: Name
    created_at: Timestamp
    a_index: Index
    b_index: Index
    outcome: Outcome
    direction: FileDirection | None = None


class SessionFile(FileInput):
    """A `json` export: what `Store.export_session` writes."""

    format: Literal[SESSION_FILE_FORMAT]  # type: ignore[valid-type]
    version: Literal[SESSION_FILE_VERSION]  # type: ignore[valid-type]
    rounds: list[FileRound] = Field(max_length=10_000)
    votes: list[FileVote] = Field(max_length=1_000_000)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def session_file(raw: bytes | str) -> dict[str, Any]:
    """A session file (bytes as uploaded, or text) checked whole; returns its plain JSON data, else UserError."""
    if len(raw) > MAX_IMPORT_BYTES:
        raise UserError(f"the file is over {MAX_IMPORT_BYTES // 2**20} MB; not a session export")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("the file is not UTF-8 text; choose a json export") from None
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise UserError(f"not a JSON session export: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of thousands of digits
        raise UserError(f"not a session export: {str(exc)[:120]}") from None
    except RecursionError:
        raise UserError("not a session export: nested too deeply") from None
    if not isinstance(data, dict) or data.get("format") != SESSION_FILE_FORMAT:
        raise UserError(f'not a mo-explorer session export (expected "format": "{SESSION_FILE_FORMAT}")')
    return check(SessionFile, data).model_dump()
