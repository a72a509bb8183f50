"""Event handlers: convert widget values, call the Explorer once, format the result.

Each handler returns a dict {component: new value} naming only what it changes. Core errors
(errors.UserError, errors.ModelError) become gr.Error in one place, `shown_as_gr_error`; a streamed
round that fails first shows the message in the status line, and whatever was stored stays stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from mo_explorer import objectives, plotting, ranking, validation
from mo_explorer.admission import Admission
from mo_explorer.errors import ModelError, NotFoundError, UserError
from mo_explorer.schema import Direction, Round
from mo_explorer.ui import compare_view, render
from mo_explorer.ui.layout import CLICK_TO_READ, Components
from mo_explorer.ui.live import LiveRound
from mo_explorer.ui.visitors import visitor_of

log = logging.getLogger(__name__)
LIVE_EVERY_S = 0.25  # the live view (the rows' text, the moving points) at most 4 times a second


def shown_as_gr_error(fn: Callable) -> Callable:
    """Turn the core's UserError/ModelError into gr.Error (a message in the page), for functions and generators."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except (UserError, ModelError) as exc:
                raise gr.Error(render.escape_html(str(exc))) from exc
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, ModelError) as exc:
            raise gr.Error(render.escape_html(str(exc))) from exc  # gr.Error renders HTML
    return wrapper


def _meaning(name: str, trust: dict | None = None) -> str:
    """The line under an axis menu: what the chosen objective means, and how far it is to be trusted."""
    if name == plotting.SCORE:
        return "The reward model's own overall score for the answer."
    note = objectives.trust_note(name, trust)
    return " ".join(filter(None, [objectives.meaning(name), f"({note})" if note else ""])) or " "


def direction_from_event(data: Any) -> Direction:
    """The Direction a widget event describes (objectives with a zero weight are left out)."""
    try:
        return validation.check(validation.DirectionData, data).direction()
    except UserError as exc:
        raise UserError(f"malformed direction from the page: {exc}") from None


class Handlers:
    """The page's handlers, bound to one Explorer and the page's components."""

    def __init__(self, explorer, components: Components, admission: Admission | None = None):
        self.explorer = explorer
        self.c = components
        # One for the whole page (and its API): the queue of rounds and every visitor's counts live here.
        self.admission = admission or Admission(explorer.settings.visitors, explorer.housekeeper.storage_full)

    # ----- checked inputs -------------------------------------------------------------------------------
    def round_of(self, session_id: Any, round_id: Any) -> Round:
        """The round a page event names, checked to belong to the page's session."""
        ref = validation.check(validation.RoundRef, session_id=session_id, round_id=round_id)
        return self.explorer.get_round(ref.round_id, ref.session_id)

    @staticmethod
    def _axes(x: Any, y: Any) -> tuple[str | None, str | None]:
        axes = validation.check(validation.Axes, x=x, y=y)
        return axes.x, axes.y

    # ----- shared views ---------------------------------------------------------------------------------
    def direction_of(self, rnd: Round, x: str | None = None, y: str | None = None) -> Direction | None:
        """The direction the page ranks by: the round's stored one, else the gate's kept to the plotted pair
        (off-plot objectives weigh nothing until pinned); None before any candidate is scored."""
        if rnd.direction is not None:
            return rnd.direction
        if not len(rnd.gating):
            return None
        x, y = render.default_axes(rnd, x, y)
        return plotting.plane_default(rnd, self.explorer.default_direction(rnd), x, y)

    def round_view(self, rnd: Round, x: str | None, y: str | None, figures: bool = True) -> dict:
        """Widget and axis choices for one round, and (unless figures=False) its gating and parallel plots."""
        c = self.c
        x, y = render.default_axes(rnd, x, y)
        direction = self.direction_of(rnd, x, y)
        trust = self.explorer.trust
        choices = [(objectives.menu_label(name, plotting.SCORE, trust), name) for name in plotting.plot_columns(rnd)]
        rounds = self.explorer.session_rounds(rnd.session_id)
        front = render.front_summary(rnd, render.front_volumes(rounds))
        view = {
            c.widget: plotting.widget_payload(rnd, direction, x, y, compare_view.overlay_for(self.explorer, rnd, x, y),
                                              front=front, previous=render.written_from(rnd, rounds)),
            c.round_id: rnd.round_id,
            c.x_axis: gr.Dropdown(choices=choices, value=x, info=_meaning(x, trust)),
            c.y_axis: gr.Dropdown(choices=choices, value=y, info=_meaning(y, trust)),
        }
        if figures:
            view[c.gating] = plotting.gating_figure(rnd, trust)
            view[c.parallel] = plotting.parallel_figure(rnd, direction) if rnd.candidates else None
        return view

    def steered_line(self, rnd: Round) -> str:
        """What a steered round did to the front (hypervolume before and after), for the status line."""
        rounds = self.explorer.session_rounds(rnd.session_id)
        return render.steered_summary(rnd, render.written_from(rnd, rounds), render.front_volumes(rounds))

    def rounds_view(self, session_id: str, current: str | None) -> dict:
        """The session's rounds as dropdown choices, newest last."""
        rounds = self.explorer.session_rounds(session_id)
        volumes = render.front_volumes(rounds)
        choices = [(render.round_label(r, volumes.get(r.round_id)), r.round_id) for r in rounds]
        return {self.c.rounds: gr.Dropdown(choices=choices, value=current)}

    def empty_view(self) -> dict:
        """What the page shows before the first round."""
        c = self.c
        return {c.widget: None, c.round_id: None, c.gating: None, c.parallel: None, c.selected: [],
                c.x_axis: gr.Dropdown(choices=[], value=None), c.y_axis: gr.Dropdown(choices=[], value=None),
                c.response: CLICK_TO_READ}

    # ----- events ---------------------------------------------------------------------------------------
    @shown_as_gr_error
    def generate(self, prompt: str, n: float, temperature: float, top_p: float, max_new_tokens: float,
                 seed: float | None, session_id: str, x: str | None, y: str | None,
                 client: gr.Request | None = None) -> Iterator[dict]:
        """Generate a round for the typed prompt (streamed: see _stream), ranked by the last direction."""
        # The event passes raw payloads (preprocess=False): they are checked here, not by the sliders.
        request = validation.check(validation.GenerateRequest, prompt=prompt, n=n, temperature=temperature,
                                   top_p=top_p, max_new_tokens=max_new_tokens, seed=0 if seed is None else seed,
                                   session_id=session_id)
        x, y = self._axes(x, y)
        session_id = self.explorer.ensure_session(request.session_id or None)
        previous = self.explorer.session_rounds(session_id)
        direction = previous[-1].direction if previous else None  # the user's last direction carries over
        yield from self._stream(request.prompt, request.params(), session_id, direction, x, y, client)

    @shown_as_gr_error
    def write_along(self, round_id: str | None, session_id: str, n: float, temperature: float, top_p: float,
                    max_new_tokens: float, seed: float | None, x: str | None, y: str | None,
                    client: gr.Request | None = None) -> Iterator[dict]:
        """Write a new round for the shown round's prompt along the arrow as it stands (a steered round)."""
        rnd = self.round_of(session_id, round_id)
        x, y = self._axes(x, y)
        direction = self.direction_of(rnd, x, y)
        if direction is None:
            raise UserError("Generate a round first: the arrow points among its answers.")
        params = validation.check(validation.Params, n=n, temperature=temperature, top_p=top_p,
                                  max_new_tokens=max_new_tokens, seed=0 if seed is None else seed).params()
        params = dataclasses.replace(params, steer=direction)
        yield from self._stream(rnd.prompt, params, rnd.session_id, direction, x, y, client, base=rnd)

    def _stream(self, prompt, params, session_id: str, direction: Direction | None, x: str | None, y: str | None,
                client: gr.Request | None, base: Round | None = None) -> Iterator[dict]:
        """Stream one round: the rows' text while they are written, progress in the status line, the plot as each
        chunk of candidates is scored. A steered round's points move over `base` (the round it is written from),
        which stays on the plot until the new round is complete (ui/live.py says why).

        The round waits its turn in the admission queue, smaller than asked while others queue (the page says so).
        """
        c = self.c
        listed, shown_at, tokens = False, 0.0, 0
        ticket = self.admission.admit(visitor_of(client), params.n, params.max_new_tokens)
        params, busy = ticket.applied(params), ticket.note()
        cut = f" The demo was busy: {params.n} x {params.max_new_tokens} this time." if ticket.reduced else ""
        writing = "Writing along the arrow" if params.steer is not None else "Generating"
        live = LiveRound(base if params.steer is not None else None)
        # closing(): when the client leaves, Gradio closes this generator, and the round's stream is closed with
        # it at once (not whenever it is garbage collected), so the round is marked cancelled within seconds.
        stream = contextlib.closing(self.explorer.stream_round(prompt, params, session_id, direction))
        try:
            with stream as events:
                for event in events:
                    if event.kind not in ("scored", "done"):
                        first_words = event.kind == "writing" and not live.has_text
                        tokens = self._follow(live, event, tokens)
                        # At most LIVE_EVERY_S apart, except the first words: every update costs the server and
                        # the browser CPU time that the generator, on the same cores, would otherwise use.
                        if (first_words and live.has_text) or time.monotonic() - shown_at >= LIVE_EVERY_S:
                            shown_at = time.monotonic()
                            said = f"{writing} {params.n} candidates: token {tokens} / {params.max_new_tokens}"
                            said = busy if busy and event.kind == "started" else said  # still waiting its turn
                            # said on the plot too, where the eye waits for the points
                            yield {c.status: said, c.widget: live.payload(f"{said}…")}
                        continue
                    rnd = event.round
                    done = event.kind == "done"
                    update = self._scored_view(rnd, live, done, x, y)
                    if not listed or done:
                        update.update(self.rounds_view(session_id, rnd.round_id))
                        listed = True
                    update[c.status] = (f"Done: {len(rnd.candidates)} candidates scored.{cut} {event.note}".rstrip()
                                        if done else f"Scored {event.step} / {event.total} candidates…")
                    if done and rnd.params.steer is not None:
                        update[c.status] += " " + self.steered_line(rnd)
                    yield update
                ticket.completed = True
        except (UserError, ModelError) as exc:
            yield {c.status: f"**Error:** {render.escape_html(str(exc))}", **self.rounds_view(session_id, None)}
            raise
        finally:
            self.admission.finish(ticket)

    @staticmethod
    def _follow(live: LiveRound, event, tokens: int) -> int:
        """Take a live event into the round's live view; returns the tokens written so far."""
        if event.kind == "writing":
            live.writing(event.writing)
            return max([tokens, *(g.n_tokens for g in event.writing)])  # progress events are thinned out
        if event.kind == "ranked":
            live.ranked(event.ranked)
        elif event.kind == "progress":
            return max(tokens, event.step)
        return tokens

    def _scored_view(self, rnd: Round, live: LiveRound, done: bool, x: str | None, y: str | None) -> dict:
        """The page after a chunk of candidates is stored (done: the whole round, drawn on its own scale)."""
        if done:
            return {**self.round_view(rnd, x, y), self.c.selected: [], self.c.direction_status: self.ranked_line(rnd)}
        said = f"Scored {len(rnd.candidates)} / {rnd.params.n} candidates…"
        live.scored(rnd)
        if live.base is not None:  # a steered round: its points are drawn over the base until it is done
            return {self.c.widget: live.payload(said)}
        # chunks before the last only move the widget: the other plots are drawn once, at the end
        update = {**self.round_view(rnd, x, y, figures=False), self.c.selected: []}
        update[self.c.widget].update(live.payload(said))
        return update

    def ranked_line(self, rnd: Round) -> str:
        """Beside the plot, for a round just shown: the direction it is ranked by and which answer is first."""
        if rnd.direction is None or not rnd.candidates:
            return ""
        best = rnd.candidates[ranking.rank(rnd.reward_matrix(), rnd.maximize, rnd.direction, rnd.objectives).best]
        return f"Ranked along the arrow ({render.direction_label(rnd.direction)}); first: #{best.index}."

    @shown_as_gr_error
    def store_direction(self, evt: gr.EventData, session_id: str) -> dict:
        """Store the direction the user released the arrow at, and recolour the all-objectives view."""
        data = evt._data if isinstance(evt._data, dict) else {}
        direction = direction_from_event(data)
        ref = validation.check(validation.RoundRef, session_id=session_id, round_id=data.get("round_id"))
        session_id, round_id = ref.session_id, ref.round_id
        ranked = self.explorer.rerank(round_id, direction, session_id)
        rnd = self.explorer.get_round(round_id, session_id)
        best = rnd.candidates[ranked.best].index if rnd.candidates else None
        return {self.c.parallel: plotting.parallel_figure(rnd, direction),
                self.c.direction_status: f"Direction saved ({render.direction_label(direction)}); first: #{best}."}

    @shown_as_gr_error
    def select(self, evt: gr.EventData, session_id: str, selected: list) -> dict:
        """Show a clicked candidate's full response (escaped Markdown) and remember the last two clicked."""
        event = validation.check(validation.SelectEvent, evt._data)
        selected = validation.check(validation.Selected, indices=selected or []).indices
        rnd = self.explorer.get_round(event.round_id, validation.session_id(session_id))
        index = event.index
        return {self.c.response: render.response_markdown(rnd, index),
                self.c.selected: [*(i for i in selected if i != index), index][-2:]}

    @shown_as_gr_error
    def change_axes(self, x: str, y: str, round_id: str | None, session_id: str) -> dict:
        """Redraw the plot of the current round on other axes."""
        if not round_id:
            return {}
        x, y = self._axes(x, y)
        return self.round_view(self.round_of(session_id, round_id), x, y)

    @shown_as_gr_error
    def switch_round(self, round_id: str | None, session_id: str, x: str | None, y: str | None) -> dict:
        """Show another round of the session, with its stored direction."""
        if not round_id:
            return self.empty_view()
        x, y = self._axes(x, y)
        rnd = self.round_of(session_id, round_id)
        return {**self.round_view(rnd, x, y), self.c.selected: [], self.c.status: f"Round {render.round_label(rnd)}",
                self.c.response: CLICK_TO_READ, self.c.direction_status: self.ranked_line(rnd)}

    def load_page(self, request: gr.Request) -> dict:
        """Resume the session named in ?session= (its latest round) or start a new one."""
        c = self.c
        asked = request.query_params.get("session") if request is not None else None
        shared = request.query_params.get("share") if request is not None else None
        wanted = validation.optional_session_id(asked)
        notice = "Session not found; started a new one. " if asked and wanted is None else ""
        try:
            if shared and not asked:
                # A share link opens a copy: the visitor's votes and directions stay in it, never the original.
                wanted = self.explorer.open_shared(validation.text(shared, "share"))
                notice = "Opened your own copy of a shared session: what you change stays in your copy. "
            session_id = self.explorer.ensure_session(wanted)
        except (NotFoundError, UserError):
            session_id = self.explorer.new_session()
            notice = ("That share link is unknown; started a new session. " if shared and not asked else
                      "Session not found; started a new one. ")
        rounds = self.explorer.session_rounds(session_id)
        if not rounds:
            return {**self.empty_view(), c.session: session_id, **self.rounds_view(session_id, None),
                    c.status: notice + "New session: type a prompt and Generate."}
        latest = rounds[-1]
        return {**self.empty_view(), **self.round_view(latest, None, None), c.session: session_id,
                **self.rounds_view(session_id, latest.round_id),
                c.status: notice + f"Resumed session with {len(rounds)} round(s)."}

    @shown_as_gr_error
    def share(self, session_id: str) -> dict:
        """A read-only link to this session: whoever opens it gets a copy, never write access to this one."""
        token = self.explorer.share(validation.session_id(session_id))
        return {self.c.share_link: f"Read-only link (opens a copy): `?share={token}` after this page's address. "
                                   "Your session id stays private: it is the key to change this session."}

    def new_session(self) -> dict:
        """Start an empty session (the page's URL follows)."""
        session_id = self.explorer.new_session()
        return {**self.empty_view(), self.c.session: session_id, **self.rounds_view(session_id, None),
                self.c.status: "New session: type a prompt and Generate."}
