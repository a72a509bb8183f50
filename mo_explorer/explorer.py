"""The one core object: the UI, the CLI and the API all go through `Explorer`.

It turns a prompt into a stored, scored round (generate -> score -> store, candidates stored as soon as they
are scored), reranks stored rounds for a new direction, and manages sessions, votes and exports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from mo_explorer import exporting, model_thread, ranking, round_run, steering, validation
from mo_explorer.config import Settings
from mo_explorer.errors import ModelError, UserError
from mo_explorer.housekeeping import Housekeeper
from mo_explorer.schema import (
    MEASURED_LENGTH,
    MEASURED_LOGPROB,
    MEASURED_TIME,
    UNRATED,
    Candidate,
    Direction,
    Generation,
    GenerationParams,
    Prompt,
    RewardOutput,
    Round,
    SessionSummary,
    Vote,
)

log = logging.getLogger(__name__)

LIKELIHOOD = "likelihood"  # a reward model objective that already is the generator's (standardised) log-prob
HEARTBEAT_S = 10.0  # how often a running round is stamped alive (a stale stamp marks its process gone)


@dataclass(frozen=True)
class RoundEvent:
    """One step of a streamed round: 'started', 'progress' (tokens), 'scored' (a chunk stored), 'done', and the
    live view, stored nowhere: 'writing' (the unfinished rows' text so far) and 'ranked' (a steered round's block)."""

    kind: str
    round: Round | None = None
    step: int = 0
    total: int = 0
    message: str = ""
    note: str = ""  # on 'done': what the user should know about the scores (e.g. ratings a judge left unread)
    writing: tuple[Generation, ...] = ()  # on 'writing': the rows still being written (finished False, row set)
    ranked: steering.Ranked | None = None  # on 'ranked': the partial answers as scored at a block, who goes on


@dataclass(frozen=True)
class LearnedDirection:
    """The direction fitted to a session's decisive votes, with how well it and the gate explain them."""

    direction: Direction
    fit: ranking.DirectionFit
    n_votes: int  # decisive votes used
    agreement: float  # fraction of those votes the learned direction explains (fitted on them: optimistic)
    gate_agreement: float  # fraction the reward model's gated score explains
    held_out: float = 0.0  # votes predicted by a fit to the other votes (leave-one-out; a no-call counts half)


class Explorer:
    """Generate, score, rank and store candidates; one instance serves every user of the process."""

    def __init__(self, settings: Settings, generator, reward_model, store):
        self.settings = settings
        self.generator = generator
        self.reward_model = reward_model
        self.store = store
        # One generation at a time: two rounds decoding at once on a 2-core CPU would only make both slower. (Every
        # model call also runs on the one model thread; the lock says so where a round's generation is.)
        self._generate_lock = threading.Lock()
        self.housekeeper = Housekeeper(store, settings.storage)  # idle sessions and the database's ceiling

    @classmethod
    def from_settings(cls, settings: Settings, generator: bool = True, reward_model: bool = True) -> Explorer:
        """Load the configured models (those asked for) and open the configured database."""
        from mo_explorer.models import registry
        from mo_explorer.storage.store import Store

        scorer = registry.load_reward_model(settings) if reward_model else None
        writer = registry.load_generator(settings) if generator else None
        url, why = settings.storage.location(settings.models.cache_dir)
        log.info("sessions are stored in %s (%s)", url, why)
        return cls(settings, writer, scorer, Store(url))

    @classmethod
    def storage_only(cls, settings: Settings) -> Explorer:
        """The configured database without models: sessions, exports, imports and sharing."""
        return cls.from_settings(settings, generator=False, reward_model=False)

    @property
    def trust(self) -> dict:
        """The reward model's held-out, length-balanced accuracy (of its score and of each objective), as its
        head directory reports it; {} when the model reports none."""
        return getattr(self.reward_model, "trust", None) or {}

    def score(self, prompt: Prompt, responses: list[str]) -> RewardOutput:
        """The reward model's output for responses to a prompt, stored nowhere (text the app did not write)."""
        if self.reward_model is None:
            raise ModelError("this explorer was opened without a reward model")
        return self.reward_model.score(prompt, responses)

    def recover_interrupted(self) -> int:
        """At server start: rounds whose process is gone are failed, with their candidates kept and why.

        Running rounds of other live processes (servers sharing this database) are left running.
        """
        n = self.store.fail_orphaned_rounds("interrupted: the server stopped while this round was running")
        if n:
            log.warning("marked %d interrupted round(s) as failed (their scored candidates are kept)", n)
        return n

    # ----- sessions -----------------------------------------------------------------------------------------
    def new_session(self) -> str:
        """Create an empty session and return its unguessable id."""
        return self.store.create_session()

    def ensure_session(self, session_id: str | None) -> str:
        """An existing session id (unknown ids are refused) or a new session when none is given."""
        if not session_id:
            return self.new_session()
        self.store.get_session(validation.session_id(session_id))  # raises NotFoundError with a clear message
        return session_id

    def list_sessions(self, limit: int = 50) -> list[SessionSummary]:
        """Newest sessions first."""
        return self.store.list_sessions(limit=limit)

    def session_rounds(self, session_id: str) -> list[Round]:
        """A session's rounds, oldest first, each with its latest direction."""
        self.store.get_session(session_id)
        return self.store.list_rounds(session_id)

    def get_round(self, round_id: str, session_id: str) -> Round:
        """One stored round of this session; NotFoundError (the same for any other id) otherwise."""
        return self.store.get_round(round_id, session_id)

    def default_params(self) -> GenerationParams:
        """Sampling parameters from the settings' defaults."""
        d = self.settings.defaults
        return GenerationParams(n=d.n, max_new_tokens=d.max_new_tokens, temperature=d.temperature, top_p=d.top_p)

    # ----- rounds -------------------------------------------------------------------------------------------
    def validate(self, prompt: Prompt, params: GenerationParams) -> list[dict]:
        """Check a request against the limits; returns the prompt as chat messages or raises UserError."""
        limits = self.settings.limits
        messages = validation.messages(prompt)  # text, or chat messages of valid UTF-8 text
        validation.params(params)  # finite numbers, whole numbers, in range
        if not messages or not any(m["content"].strip() for m in messages):
            raise UserError("The prompt is empty: type something to generate from.")
        chars = sum(len(m["content"]) for m in messages)
        if chars > limits.max_prompt_chars:
            raise UserError(f"The prompt has {chars} characters; the limit is {limits.max_prompt_chars}.")
        if not 1 <= params.n <= limits.candidates:
            raise UserError(f"Number of candidates must be between 1 and {limits.candidates}.")
        if not 1 <= params.max_new_tokens <= limits.max_new_tokens:
            raise UserError(f"Max new tokens must be between 1 and {limits.max_new_tokens}.")
        if params.temperature < 0 or not 0 < params.top_p <= 1:
            raise UserError("Temperature must be >= 0 and top-p in (0, 1].")
        n_tokens = self.generator.count_prompt_tokens(messages)
        if n_tokens > limits.max_prompt_tokens:
            raise UserError(f"The prompt is {n_tokens} tokens long; the limit is {limits.max_prompt_tokens}.")
        return messages

    def stream_round(self, prompt: Prompt, params: GenerationParams | None = None, session_id: str | None = None,
                     direction: Direction | None = None) -> Iterator[RoundEvent]:
        """Generate, score and store one round, yielding progress and each stored group of candidates.

        Candidates are scored and stored as they finish, while the others are still being written; a generator
        that fails part-way leaves the finished ones stored in a round marked failed.
        """
        params = params or self.default_params()
        messages = self.validate(prompt, params)
        params, fallback = self._steerable(params)
        session_id = self.ensure_session(session_id)
        yield RoundEvent("started", total=params.max_new_tokens, message="generating")
        round_id: str | None = None
        stored = unrated = 0
        # closing(): a stream closed here closes the generation at once, which stops it at its next token.
        generation = contextlib.closing(self._generate_and_score(messages, params))
        try:
            with generation as events, self._heartbeat():
                for kind, payload in events:
                    if kind == "progress":
                        yield RoundEvent("progress", step=payload[0], total=payload[1],
                                         message=f"generating ({stored} of {params.n} scored)")
                        continue
                    if kind in ("writing", "ranked"):
                        yield RoundEvent(kind, step=stored, total=params.n, message="generating",
                                         **({"writing": tuple(payload)} if kind == "writing" else {"ranked": payload}))
                        continue
                    generations, out = payload
                    unrated += int(np.sum(out.extras.get(UNRATED, 0)))
                    if round_id is None:
                        round_id = self._create_round(session_id, messages, params, out)
                    self.store.add_candidates(round_id, session_id, self._candidates(stored, generations, out))
                    stored += len(generations)
                    yield RoundEvent("scored", round=self.store.get_round(round_id, session_id), step=stored,
                                     total=params.n, message="scoring")
        except GeneratorExit:
            # The stream was closed: the client left or cancelled (Gradio closes the handler's generator).
            # Its round must not stay "running"; what was scored is kept and the round says why it stopped.
            if round_id is not None:
                self.store.finish_round(round_id, session_id, status="cancelled",
                                        error=f"cancelled: the client left after {stored} of {params.n} "
                                              "candidates were scored; those are kept")
            raise
        except Exception as exc:
            if round_id is not None:
                self.store.finish_round(round_id, session_id, status="failed", error=str(exc))
            if isinstance(exc, (UserError, ModelError)):
                raise
            raise ModelError(f"The reward model failed while scoring: {exc}") from exc
        self.store.finish_round(round_id, session_id, status="complete")
        direction = direction or params.steer  # a steered round is ranked along the direction it was written by
        if direction is not None:
            self.rerank(round_id, direction, session_id)
        rnd = self.store.get_round(round_id, session_id)
        note = (f"The reward model could not read {unrated} of {stored * len(rnd.gating)} ratings; they were set to "
                "neutral (0)." if unrated else "")
        note = " ".join(part for part in (fallback, note) if part)
        yield RoundEvent("done", round=rnd, step=stored, total=stored, message="done", note=note)

    def run_round(self, prompt: Prompt, params: GenerationParams | None = None, session_id: str | None = None,
                  direction: Direction | None = None,
                  progress: Callable[[RoundEvent], None] | None = None) -> Round:
        """Non-streaming `stream_round`: returns the complete stored round."""
        final = None
        for event in self.stream_round(prompt, params, session_id, direction):
            if progress is not None:
                progress(event)
            final = event.round or final
        return final

    def _generate_and_score(self, messages, params):
        """Generate and score (round_run.RoundRun), yielding ("progress", (step, total)) and
        ("scored", ([Generation, ...], RewardOutput)) as candidates end (those scored since the last look, together).
        """

        def generate(progress, on_finish, report) -> None:
            live = {}  # what the page shows while the round is written, from generators that can say it
            if getattr(self.generator, "streams_text", False):
                live["on_partial"] = lambda rows: report("writing", rows)
            if params.steer is not None:  # it ranks its partial answers at every block, inside the generation
                live["guide"] = self._guide(messages, params, lambda ranked: report("ranked", ranked))
            self.generator.generate(messages, params, progress=progress, on_finish=on_finish, **live)

        # A generator on a server (runs_locally False) decodes there, batching rounds of several users; so does a
        # local one that batches waiting rounds (Generator.batches). Either way the round runs on its own thread,
        # at once, and its model work queues for the model thread, where waiting rounds are decoded together.
        alone = getattr(self.generator, "runs_locally", True) and not self._batches(params)
        run = round_run.RoundRun(generate, lambda generations: self._score(messages, generations),
                                 self._generate_lock if alone else contextlib.nullcontext())
        yield from run.stream(model_thread.submit if alone else round_run.on_own_thread)

    def _batches(self, params: GenerationParams) -> bool:
        batches = getattr(self.generator, "batches", None)
        return params.steer is None and batches is not None and batches(params)

    def _steerable(self, params: GenerationParams) -> tuple[GenerationParams, str]:
        """Params to run and what the user should know: a generator that cannot branch writes a plain round."""
        if params.steer is None:
            return params, ""
        names = (*self.reward_model.objectives, MEASURED_LENGTH, MEASURED_TIME, MEASURED_LOGPROB)
        unknown = [name for name in params.steer.objectives if name not in names]
        if unknown:
            raise UserError(f"steer: unknown objective(s) {unknown}; available: {list(names)}")
        if getattr(self.generator, "can_steer", False):
            return params, ""
        return (dataclasses.replace(params, steer=None),
                f"The generator {self.generator.model_id} cannot branch its rows, so this is a plain round: it was "
                "not written along the arrow.")

    def _guide(self, messages, params: GenerationParams,
               on_ranked: Callable[[steering.Ranked], None]) -> steering.Guide:
        """The steered round's guide: partial answers scored and ranked along params.steer at every block, each
        block's scores and survivors handed to on_ranked (the page moves the points with them)."""
        scored: list[Candidate] = []  # the block's partial answers as scored, until the guide has ranked them

        def rewards(partial: list[Generation]):
            try:
                out = self._score(messages, partial)
            except Exception as exc:  # carried past the generator, as a finished candidate's scoring failure is
                raise round_run.ScoringFailed(exc) from exc
            names, _, maximize = self._objectives(out)
            scored[:] = self._candidates(0, partial, out)
            return np.stack([c.rewards for c in scored]), names, maximize

        def ranked(partial: list[Generation], parents: list[int]) -> None:
            on_ranked(steering.Ranked(tuple(g.row for g in partial), tuple(scored), tuple(parents)))

        s = self.settings.steering
        return steering.Guide(rewards, params.steer, s.block_tokens, s.survivors, s.temperature, params.seed,
                              on_ranked=ranked)

    @contextlib.contextmanager
    def _heartbeat(self) -> Iterator[None]:
        """While a round runs: stamp it alive every HEARTBEAT_S, so other servers on the database leave it be."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                try:
                    self.store.heartbeat()
                except Exception:  # a missed beat only risks the round being failed later; never the round itself
                    log.warning("could not record the heartbeat of running rounds", exc_info=True)

        thread = threading.Thread(target=beat, name="round-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()

    def _score(self, messages, generations: list[Generation]) -> RewardOutput:
        max_chars = self.settings.limits.max_response_tokens * 8  # coarse cap; the model truncates by tokens
        texts = [g.text[:max_chars] for g in generations]
        logprob = self._own_logprobs(generations)
        if logprob is not None:
            return self.reward_model.score(messages, texts, mean_logprob=logprob)
        return self.reward_model.score(messages, texts)

    def _own_logprobs(self, generations: list[Generation]) -> np.ndarray | None:
        """The generator's own log-probs of its candidates, when the reward model's likelihood reads that model."""
        name = getattr(self.reward_model, "likelihood_model", None)
        if name is None or name != self.generator.model_id:
            return None
        tokens = self.reward_model.likelihood_tokens
        values = [g.mean_logprob(tokens, self.generator.closing_tokens) for g in generations]
        return None if any(v is None for v in values) else np.asarray(values, np.float32)

    def _objectives(self, out: RewardOutput) -> tuple[tuple[str, ...], tuple[bool, ...], tuple[bool, ...]]:
        # The raw mean log-prob is shown only when the reward model has no likelihood objective of its own.
        own = MEASURED_LOGPROB in out.extras and LIKELIHOOD not in out.objectives
        measured = [MEASURED_LENGTH, MEASURED_TIME] + ([MEASURED_LOGPROB] if own else [])
        names = tuple(out.objectives) + tuple(measured)
        is_measured = (False,) * len(out.objectives) + (True,) * len(measured)
        # length and generation time are costs: fewer tokens and fewer seconds are better
        maximize = tuple(name not in (MEASURED_LENGTH, MEASURED_TIME) for name in names)
        return names, is_measured, maximize

    def _create_round(self, session_id: str, messages, params: GenerationParams, out: RewardOutput) -> str:
        names, is_measured, maximize = self._objectives(out)
        return self.store.create_round(
            session_id, messages, params, self.generator.model_id, self.reward_model.model_id, names,
            is_measured, maximize, np.asarray(out.gating, np.float32), np.asarray(out.transform, np.float32))

    def _candidates(self, start: int, chunk: list[Generation], out: RewardOutput) -> list[Candidate]:
        logprob = out.extras.get(MEASURED_LOGPROB) if LIKELIHOOD not in out.objectives else None
        result = []
        for i, g in enumerate(chunk):
            measured = [g.n_tokens, g.seconds] + ([float(logprob[i])] if logprob is not None else [])
            rewards = np.concatenate([out.rewards[i], np.asarray(measured, np.float32)]).astype(np.float32)
            result.append(Candidate(index=start + i, text=g.text, rewards=rewards, score=float(out.score[i]),
                                    n_tokens=g.n_tokens, gen_seconds=g.seconds))
        return result

    # ----- directions ---------------------------------------------------------------------------------------
    def default_direction(self, round: Round) -> Direction:
        """The gate's per-objective coefficients (gating @ T.T) over the model objectives, as a direction."""
        k = len(round.gating)
        coeffs = round.transform @ round.gating if k else np.ones(1)
        if not np.any(coeffs):
            coeffs = np.ones(k)
        return Direction(tuple(round.objectives[:k]), tuple(float(c) for c in coeffs))

    def rerank(self, round_id: str, direction: Direction, session_id: str) -> ranking.Ranking:
        """Rank a stored round of this session by a direction, and store the direction in its history."""
        rnd = self.store.get_round(round_id, session_id)
        try:
            result = ranking.rank(rnd.reward_matrix(), rnd.maximize, direction, rnd.objectives)
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        self.store.add_direction(round_id, session_id, direction)
        return result

    # ----- votes --------------------------------------------------------------------------------------------
    def list_votes(self, session_id: str) -> list[Vote]:
        """Every vote of the session, oldest first."""
        return self.store.list_votes(session_id)

    def vote(self, session_id: str, round_id: str, a_index: int, b_index: int, outcome: str) -> Vote:
        """Store a side-by-side vote with the direction in force; refuses candidates outside the session."""
        rnd = self.store.get_round(round_id, session_id)
        return self.store.add_vote(session_id, round_id, a_index, b_index, outcome, rnd.direction)

    def learned_direction(self, session_id: str, l2: float = 1.0,
                          objectives: tuple[str, ...] | None = None) -> LearnedDirection | None:
        """Fit the user's direction to the session's decisive votes (over `objectives`, default all of the
        rounds' objectives); None with fewer than two."""
        rounds = {r.round_id: r for r in self.session_rounds(session_id)}
        diffs, outcomes, gate, names = [], [], [], None
        for vote in self.store.list_votes(session_id):
            rnd = rounds.get(vote.round_id)
            if vote.outcome not in ("a", "b") or rnd is None:
                continue
            if names is None:
                names = rnd.objectives
            if rnd.objectives != names:
                continue  # votes from rounds scored by another reward model live in another space
            rows = rnd.positions()  # votes name candidate ids, the matrices are indexed by row
            if vote.a_index not in rows or vote.b_index not in rows:
                continue
            a, b = rows[vote.a_index], rows[vote.b_index]
            values = ranking.normalise(ranking.orient(rnd.reward_matrix(), rnd.maximize))
            diffs.append(values[a] - values[b])
            outcomes.append(1.0 if vote.outcome == "a" else 0.0)
            scores = rnd.scores()
            gate.append(float(scores[a] > scores[b]) == outcomes[-1])
        if len(diffs) < 2:
            return None
        D, y = np.asarray(diffs), np.asarray(outcomes)  # (m, k), (m,)
        if objectives is not None:
            unknown = [name for name in objectives if name not in names]
            if unknown:
                raise UserError(f"the votes' rounds have no objective(s) {unknown}")
            D, names = D[:, [names.index(name) for name in objectives]], tuple(objectives)
        fit = ranking.fit_direction(D, y, l2=l2)
        held_out, _ = ranking.leave_one_out(D, y, l2=l2)
        return LearnedDirection(Direction(tuple(names), tuple(float(w) for w in fit.weights)), fit, len(diffs),
                                float(fit.agreement), float(np.mean(gate)), held_out=float(held_out))

    # ----- export / import ----------------------------------------------------------------------------------
    def export_session(self, session_id: str, fmt: str) -> str:
        """A session as TRL preference JSON Lines ('trl'), the whole session ('json') or candidates ('csv')."""
        self.store.get_session(session_id)
        if fmt == "trl":
            return exporting.to_trl(self.store.vote_records(session_id))
        if fmt == "json":
            return exporting.to_json(self.store.export_session(session_id))
        if fmt == "csv":
            return exporting.to_csv(self.store.list_rounds(session_id))
        raise UserError(f"unknown export format {fmt!r}; use trl, json or csv")

    def share(self, session_id: str) -> str:
        """A read-only share token for a session: opening it gives the visitor a copy (open_shared)."""
        return self.store.share_token(session_id)

    def open_shared(self, token: str) -> str:
        """A new session holding a copy of the shared one; the shared session itself stays out of reach."""
        original = self.store.shared_session_id(token)
        return self.import_session(self.export_session(original, "json"))

    def import_session(self, raw: bytes | str) -> str:
        """Restore a 'json' export (the file's bytes, or its text) as a new session; returns its id.

        The whole file is checked before one transaction writes it: a refused file leaves nothing behind.
        """
        limit_mb = self.settings.limits.max_import_mb
        if len(raw) > limit_mb * 2**20:
            raise UserError(f"The file is {len(raw) / 2**20:.1f} MB; this app imports session files of at most "
                            f"{limit_mb:g} MB.")
        return self.store.import_session(validation.session_file(raw))
