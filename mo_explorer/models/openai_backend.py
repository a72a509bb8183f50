"""Generation on an OpenAI-compatible server (vLLM, TGI, SGLang, llama.cpp, transformers serve).

The server does the decoding; this side streams the answers back and reports each candidate as it ends, with the
same `generate(messages, params, progress, on_finish, on_partial)` interface as the local Generator: on_partial
sees the unfinished candidates' text while they stream in, each under the row it will keep (the n-choice request's
choice index, then the one-choice requests that fill the rest, in order). Servers differ in what
they honour: vLLM returns `n` choices per request and token log-probs, `transformers serve` returns one greedy
choice whatever it is asked. So the backend counts what came back and fills the rest with concurrent one-choice
requests, and remembers that the server ignores `n` so later rounds send them concurrently from the start.

No torch here: generation runs on the server, so it need not (and does not) use the model thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import httpx
import openai

from mo_explorer import errors, schema

log = logging.getLogger(__name__)

PREFIX = "openai:"
CHARS_PER_TOKEN = 3  # prompt length estimate without the server's tokenizer: errs towards more tokens
MAX_PARALLEL = 16  # concurrent one-choice requests when a server ignores `n`

PARTIAL_EVERY_S = 0.25  # as the embedded generator: the page shows the rows' text at most this often
Progress = Callable[[int, int], None]
Finished = Callable[[schema.Generation], None]
Writing = Callable[[list[schema.Generation]], None]  # the unfinished rows as they read now (finished=False, row set)


def base_url(spec: str, prefix: str = PREFIX) -> str:
    """The server URL of 'openai:<URL>' (or 'judge:<URL>'); a URL without /v1 gets it appended."""
    url = spec[len(prefix):].strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise errors.ModelError(f"{spec!r}: write the server as {prefix}http://host:port (with http:// or https://)")
    return url if url.endswith("/v1") else url + "/v1"


def make_client(url: str, api_key: str, timeout: float) -> openai.OpenAI:
    """An OpenAI client that fails fast: no retries (a retried round would double the server's work)."""
    if not timeout > 0:
        raise errors.ModelError(f"openai_timeout must be a positive number of seconds, not {timeout}")
    return openai.OpenAI(base_url=url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=0)


def served_model(client: openai.OpenAI, requested: str, setting: str) -> str:
    """The model to ask for: the setting, else the first one the server lists."""
    if requested:
        return requested
    try:
        listed = [m.id for m in client.models.list()]
    except (openai.OpenAIError, httpx.HTTPError) as exc:
        raise errors.ModelError(f"{describe(exc, str(client.base_url))}; or set {setting} to the model name") from exc
    if not listed:
        raise errors.ModelError(f"the server at {client.base_url} lists no models: set {setting} to the model name")
    return listed[0]


def describe(exc: BaseException, url: str) -> str:
    """One sentence for a failed call to an OpenAI-compatible server."""
    if isinstance(exc, openai.APITimeoutError) or isinstance(exc, httpx.TimeoutException):
        return f"the server at {url} did not answer in time ({type(exc).__name__})"
    if isinstance(exc, openai.APIConnectionError) or isinstance(exc, httpx.ConnectError):
        return f"could not reach the server at {url} ({exc.__cause__ or exc})"
    if isinstance(exc, openai.APIStatusError):
        body = exc.response.text[:300] if exc.response is not None else ""
        return f"the server at {url} answered HTTP {exc.status_code}: {body or exc.message}"
    if isinstance(exc, httpx.HTTPError):  # e.g. the connection closed in the middle of a streamed answer
        return f"the answer from {url} broke off: {exc}"
    return f"the server at {url} failed: {exc}"


@dataclass
class _Choice:
    """One candidate being received."""

    parts: list[str] = field(default_factory=list)
    chunks: int = 0  # content pieces; servers send one per token, so this is the token count without log-probs
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str | None = None
    seconds: float = 0.0
    reported: bool = False
    row: int = -1  # which of the round's n candidates this is

    def generation(self, usage_tokens: int | None) -> schema.Generation:
        # Token count: the log-probs (one per token) when sent, else the server's usage for a one-choice answer,
        # else the content pieces.
        n_tokens = len(self.logprobs) or usage_tokens or self.chunks
        return schema.Generation(text="".join(self.parts), n_tokens=n_tokens, seconds=self.seconds,
                                 finished=self.finish_reason != "length", token_logprobs=tuple(self.logprobs),
                                 row=self.row)


class _Rows:
    """Every candidate of a round being received, across its requests, to show them while they are written."""

    def __init__(self, on_partial: Writing | None, start: float):
        self.on_partial, self.start = on_partial, start
        self.choices: dict[int, _Choice] = {}
        self.due = 0.0  # the first hand-up goes as soon as there are words
        self.lock = threading.Lock()  # request threads add rows while another hands them up

    def add(self, row: int) -> _Choice:
        with self.lock:
            return self.choices.setdefault(row, _Choice(row=row))

    def hand_up(self) -> None:
        """The unfinished rows' text to on_partial, at most every PARTIAL_EVERY_S."""
        now = time.perf_counter()
        if self.on_partial is None or now < self.due:
            return
        with self.lock:
            live = [c for _, c in sorted(self.choices.items()) if c.finish_reason is None and c.parts]
        if not any("".join(c.parts).strip() for c in live):
            return
        self.due = now + PARTIAL_EVERY_S
        self.on_partial([schema.Generation(text="".join(c.parts), n_tokens=len(c.logprobs) or c.chunks,
                                           seconds=now - self.start, finished=False, row=c.row) for c in live])


@dataclass
class RoundStats:
    """What the server did in the last round: how many requests, how many choices each returned."""

    requests: int = 0
    choices: list[int] = field(default_factory=list)  # per request
    logprobs: bool = False  # whether any token log-probs came back


class OpenAIGenerator:
    """Candidates from an OpenAI-compatible chat completions endpoint, streamed."""

    runs_locally = False  # Explorer runs its rounds off the model thread and several at once
    streams_text = True  # the answers arrive as streams: their text is handed up while they are written
    closing_tokens = 1  # Explorer reads it only when this is the likelihood model, which it never is

    def __init__(self, client: openai.OpenAI, model: str):
        self.client = client
        self.model = model
        self.url = str(client.base_url).rstrip("/")
        self.model_id = f"openai:{model}"
        self.honours_n: bool | None = None  # learnt from the first round that asks for more than one
        self.last_round = RoundStats()
        self._stats_lock = threading.Lock()

    @classmethod
    def load(cls, spec: str, model: str, api_key: str, timeout: float) -> OpenAIGenerator:
        """Connect to 'openai:<base URL>' and settle the model name (the setting, else the server's first)."""
        client = make_client(base_url(spec), api_key, timeout)
        name = served_model(client, model, "MO_EXPLORER_OPENAI_MODEL")
        log.info("generator: %s at %s", name, client.base_url)
        return cls(client, name)

    def count_prompt_tokens(self, messages: schema.Prompt) -> int:
        """An upper estimate of the prompt's tokens (the server's tokenizer is not here; it enforces its own limit)."""
        messages = schema.as_messages(messages)
        return sum(math.ceil(len(m["content"]) / CHARS_PER_TOKEN) + 4 for m in messages)

    def generate(self, messages: schema.Prompt, params: schema.GenerationParams,
                 progress: Progress | None = None, on_finish: Finished | None = None,
                 on_partial: Writing | None = None) -> list[schema.Generation]:
        """params.n candidates, in the order they ended; on_finish sees each as it ends (from one thread at a time),
        on_partial the unfinished ones' text while they stream in (at most every PARTIAL_EVERY_S).

        Raises ModelError when the server fails; candidates reported before that are the ones received whole.
        """
        messages = schema.as_messages(messages)
        self.last_round = RoundStats()
        done: list[schema.Generation] = []
        lock = threading.Lock()  # callbacks come from several request threads: Explorer sees them one at a time
        stop = threading.Event()
        steps = [0]
        start = time.perf_counter()
        rows = _Rows(on_partial, start)

        def finished(g: schema.Generation) -> None:
            with lock:
                done.append(g)
                if on_finish is not None:
                    on_finish(g)
                if progress is not None:  # a step after each arrival: Explorer scores what ended at a step
                    progress(min(max(steps[0], 1), params.max_new_tokens), params.max_new_tokens)

        def stepped(tokens: int) -> None:
            with lock:
                if tokens > steps[0]:
                    steps[0] = tokens
                    if progress is not None:
                        progress(min(tokens, params.max_new_tokens), params.max_new_tokens)
                rows.hand_up()

        try:
            if params.n > 1 and self.honours_n is not False:
                got = self._request(messages, params, params.n, params.seed, start, finished, stepped, stop,
                                    rows, 0)
                self.honours_n = got == params.n
                if got < params.n:
                    log.info("the server returned %d of %d choices: asking for the rest concurrently", got, params.n)
            missing = params.n - len(done)
            if missing > 0:
                self._fill(messages, params, missing, start, finished, stepped, stop, rows)
        except errors.ModelError as exc:
            raise errors.ModelError(f"{exc}; {len(done)} of {params.n} candidates were received whole and are kept"
                                    ) from exc.__cause__
        log.info("generated %d candidates x <=%d tokens in %.2f s on %s (%d request(s))", len(done),
                 params.max_new_tokens, time.perf_counter() - start, self.url, self.last_round.requests)
        return done

    def _fill(self, messages, params, missing: int, start: float, finished, stepped, stop: threading.Event,
              rows: _Rows) -> None:
        """`missing` one-choice requests at once (rows n - missing .. n - 1); the first failure stops the others and
        is raised."""
        first = params.n - missing
        seeds = [params.seed + first + i for i in range(missing)]  # distinct where the server honours seeds
        with ThreadPoolExecutor(max_workers=min(missing, MAX_PARALLEL), thread_name_prefix="openai") as pool:
            futures = [pool.submit(self._request, messages, params, 1, s, start, finished, stepped, stop, rows,
                                   first + i) for i, s in enumerate(seeds)]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f.exception() for f in futures if f.done() and f.exception() is not None]
            if failed:
                stop.set()  # the others end at their next chunk
                raise failed[0]

    def _request(self, messages, params, n: int, seed: int, start: float, finished, stepped,
                 stop: threading.Event, rows: _Rows, first_row: int) -> int:
        """One streamed request for n choices (rows first_row ..); reports each finished choice; returns how many
        came back."""
        with self._stats_lock:
            self.last_round.requests += 1
        choices: dict[int, _Choice] = {}
        usage_tokens: int | None = None
        try:
            stream = self.client.chat.completions.create(
                model=self.model, messages=messages, n=n, max_tokens=params.max_new_tokens,
                temperature=float(params.temperature), top_p=float(params.top_p), seed=int(seed),
                logprobs=True, stream=True, stream_options={"include_usage": True})
            with stream:
                for chunk in stream:
                    if stop.is_set():
                        return len(choices)
                    if chunk.usage is not None and n == 1:
                        usage_tokens = chunk.usage.completion_tokens
                    for c in chunk.choices:
                        if c.index not in choices:
                            choices[c.index] = rows.add(first_row + c.index)
                        got = choices[c.index]
                        if c.delta is not None and c.delta.content:
                            got.parts.append(c.delta.content)
                            got.chunks += 1
                        if c.logprobs is not None and c.logprobs.content:
                            got.logprobs.extend(float(t.logprob) for t in c.logprobs.content)
                        if c.finish_reason is not None and got.finish_reason is None:
                            got.finish_reason = c.finish_reason
                            got.seconds = time.perf_counter() - start
                        stepped(len(got.logprobs) or got.chunks)
                    # A one-choice answer waits for its usage (token count), which comes with or after the finish.
                    for got in choices.values():
                        if got.finish_reason is not None and not got.reported and (n > 1 or usage_tokens):
                            got.reported = True
                            finished(got.generation(usage_tokens))
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            raise errors.ModelError(f"generation failed: {describe(exc, self.url)}") from exc
        open_ = [i for i, got in choices.items() if got.finish_reason is None]
        if open_ or not choices:
            received = sum(len(choices[i].parts) for i in open_)
            raise errors.ModelError(f"generation failed: the answer from {self.url} ended before its candidates "
                                    f"were complete ({len(open_) or n} unfinished, {received} pieces of them "
                                    "received)")
        for got in choices.values():  # the one-choice answer of a server that sent no usage
            if not got.reported:
                got.reported = True
                finished(got.generation(usage_tokens))
        with self._stats_lock:
            self.last_round.choices.append(len(choices))
            self.last_round.logprobs |= any(got.logprobs for got in choices.values())
        return len(choices)
