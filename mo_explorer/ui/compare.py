"""The side-by-side comparison under the plot: two candidates of a round, arena votes, the direction learned
from them, "use my direction", and the session's export and import.

`build_compare()` places the components (after the page's own); `CompareHandlers` holds the events and
`wire_compare` connects them. The vote event is `/vote` and the export `/export` in the API.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from mo_explorer import plotting, validation
from mo_explorer.errors import UserError
from mo_explorer.schema import Round
from mo_explorer.ui import compare_view, render
from mo_explorer.ui.handlers import Handlers, shown_as_gr_error
from mo_explorer.ui.layout import Components
from mo_explorer.ui.visitors import visitor_of

log = logging.getLogger(__name__)

INTRO = """## Compare two answers
Vote on pairs as in Chatbot Arena: each vote is stored, and once there are more votes than the plotted pair's two
weights the page learns your direction from them (the short dashed arrow on the plot). **Next pair** shows the
pair your arrow is least sure about; **Compare** puts the reward model's pick beside your arrow's pick."""
KEYS = "Keys: **A** · **B** · **T** tie · **X** both bad · **N** next pair."
EXPORT_EXTENSIONS = {"trl": "jsonl", "json": "json", "csv": "csv"}
# elem_id of each vote button -> its label and the outcome it records (the arena's four buttons)
VOTE_BUTTONS = {"vote-a": ("A is better  [A]", "a"), "vote-b": ("B is better  [B]", "b"),
                "vote-tie": ("Tie  [T]", "tie"), "vote-both-bad": ("Both are bad  [X]", "both_bad")}


@dataclass
class CompareComponents:
    """The comparison's components (built inside the page's gr.Blocks)."""

    a_pick: gr.Dropdown
    b_pick: gr.Dropdown
    open_default: gr.Button
    open_clicked: gr.Button
    next_pair: gr.Button
    prompt: gr.Markdown
    a_text: gr.Markdown
    b_text: gr.Markdown
    votes: list[gr.Button]
    vote_status: gr.Markdown
    bars: gr.Plot
    wins: gr.Markdown
    learned: gr.Markdown
    use_mine: gr.Button
    pair_round: gr.Textbox  # hidden: the round whose candidates are compared (a vote names it)
    export_format: gr.Radio
    export: gr.Button
    export_file: gr.File
    export_status: gr.Markdown
    import_file: gr.UploadButton


def build_compare() -> CompareComponents:
    """Create and place the comparison, votes, learned direction and export; call inside `with gr.Blocks():`."""
    gr.Markdown(INTRO, elem_id="compare-intro")
    with gr.Row(equal_height=True):
        next_pair = gr.Button("Next pair  [N]", variant="primary", elem_id="compare-next")
        open_default = gr.Button("Compare: reward model's pick vs your arrow's pick", elem_id="compare-open")
        open_clicked = gr.Button("Compare the last two clicked", elem_id="compare-clicked")
        a_pick = gr.Dropdown(label="A", choices=[], interactive=True, allow_custom_value=True, elem_id="pick-a")
        b_pick = gr.Dropdown(label="B", choices=[], interactive=True, allow_custom_value=True, elem_id="pick-b")
    # the arena's order: the prompt, both answers side by side in frames, the four votes right under them
    prompt = gr.Markdown("", elem_id="compare-prompt", sanitize_html=True)
    with gr.Row(equal_height=True, elem_id="compare-sides"):
        a_text = gr.Markdown("", elem_id="side-a", sanitize_html=True, elem_classes=["moex-side"])
        b_text = gr.Markdown("", elem_id="side-b", sanitize_html=True, elem_classes=["moex-side"])
    with gr.Row(elem_id="vote-row"):
        votes = [gr.Button(label, interactive=False, elem_id=elem_id) for elem_id, (label, _) in VOTE_BUTTONS.items()]
    vote_status = gr.Markdown(KEYS, elem_id="vote-status")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            bars = gr.Plot(label="A and B on every objective", elem_id="compare-bars")
        with gr.Column(scale=2):
            wins = gr.Markdown("", elem_id="compare-wins")
            learned = gr.Markdown("", elem_id="learned")
            use_mine = gr.Button("Use my direction", interactive=False, elem_id="use-mine")
    pair_round = gr.Textbox(visible=False, elem_id="pair-round")
    with gr.Accordion("Export or import this session", open=False, elem_id="export-panel"):
        with gr.Row(equal_height=False):
            export_format = gr.Radio([("TRL preference pairs (jsonl)", "trl"), ("whole session (json)", "json"),
                                      ("candidates (csv)", "csv")], value="trl", label="Format",
                                     elem_id="export-format")
            export = gr.Button("Export", elem_id="export", size="md")
            import_file = gr.UploadButton("Import a json export…", file_types=[".json"], elem_id="import", size="md")
        export_status = gr.Markdown("", elem_id="export-status")  # said next to the button that caused it
        export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
    return CompareComponents(a_pick, b_pick, open_default, open_clicked, next_pair, prompt, a_text, b_text, votes,
                             vote_status, bars, wins, learned, use_mine, pair_round, export_format, export,
                             export_file, export_status, import_file)


def _pair(a, b) -> tuple[int, int]:
    """Two candidate indices from the A and B menus or an API call."""
    pair = validation.check(validation.Pair, a=a, b=b)
    return pair.a, pair.b


class CompareHandlers:
    """The comparison's events, for one Explorer and the page's components and handlers."""

    def __init__(self, explorer, c: Components, cc: CompareComponents, h: Handlers):
        self.explorer, self.c, self.cc, self.h = explorer, c, cc, h

    def _round(self, session_id: str, round_id: str | None) -> Round:
        if not round_id:
            raise UserError("Generate a round first: there is nothing to compare yet.")
        return self.h.round_of(session_id, round_id)

    def view(self, rnd: Round, a: int, b: int, x: str | None, y: str | None, said: str = "") -> dict:
        """The prompt, both sides, the bars, where each ranks first, and the vote buttons enabled."""
        cc = self.cc
        known = compare_view.positions(rnd)
        for side, index in (("A", a), ("B", b)):
            if index not in known:
                raise UserError(f"candidate #{index} ({side}) is not in this round; it has {sorted(known)}")
        if a == b:
            raise UserError("pick two different candidates for A and B")
        x, y = render.default_axes(rnd, x, y)
        choices = [(f"#{i}", i) for i in sorted(known)]
        return {cc.a_pick: gr.Dropdown(choices=choices, value=a), cc.b_pick: gr.Dropdown(choices=choices, value=b),
                cc.prompt: compare_view.prompt_markdown(rnd),
                cc.a_text: compare_view.side_markdown(rnd, a, "A"), cc.b_text: compare_view.side_markdown(rnd, b, "B"),
                cc.bars: plotting.comparison_bars(rnd, a, b),
                cc.wins: compare_view.wins_markdown(rnd, a, b, x, y, self.h.direction_of(rnd, x, y)),
                cc.pair_round: rnd.round_id, cc.vote_status: f"{said}Which answer is better? {KEYS}",
                **{button: gr.Button(interactive=True) for button in cc.votes}}

    def cleared(self) -> dict:
        """No comparison shown (a new round or session): votes disabled until both texts are shown again."""
        cc = self.cc
        return {cc.a_pick: gr.Dropdown(choices=[], value=None), cc.b_pick: gr.Dropdown(choices=[], value=None),
                cc.prompt: "", cc.a_text: "", cc.b_text: "", cc.bars: None, cc.wins: "", cc.pair_round: "",
                cc.vote_status: KEYS, **{button: gr.Button(interactive=False) for button in cc.votes}}

    def _next(self, rnd: Round, x: str | None, y: str | None, said: str = "") -> dict:
        """The view of the pair the page's direction is least sure about, skipping pairs voted on already."""
        if len(rnd.candidates) < 2:
            raise UserError("a comparison needs a round with at least two candidates")
        done = {frozenset((v.a_index, v.b_index)) for v in self.explorer.list_votes(rnd.session_id)
                if v.round_id == rnd.round_id}
        x, y = render.default_axes(rnd, x, y)
        a, b = compare_view.next_pair(rnd, self.h.direction_of(rnd, x, y), done)
        return self.view(rnd, a, b, x, y, said)

    @shown_as_gr_error
    def next_pair(self, session_id: str, round_id: str | None, x: str | None, y: str | None) -> dict:
        """Show the pair the current direction is least sure about."""
        return self._next(self._round(session_id, round_id), x, y)

    @shown_as_gr_error
    def open_default(self, session_id: str, round_id: str | None, x: str | None, y: str | None) -> dict:
        """Compare the gate's winner with the current direction's winner (or runner-up when they coincide)."""
        rnd = self._round(session_id, round_id)
        try:
            a, b = compare_view.default_pair(rnd, self.h.direction_of(rnd, x, y))
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        return self.view(rnd, a, b, x, y)

    @shown_as_gr_error
    def open_clicked(self, session_id: str, round_id: str | None, selected: list, x: str | None,
                     y: str | None) -> dict:
        """Compare the last two candidates clicked on the plot or in the lists."""
        if not selected or not isinstance(selected, list) or len(selected) < 2:
            raise UserError("Click two points or cards first (the last two clicked are compared).")
        a, b = _pair(selected[-2], selected[-1])
        return self.view(self._round(session_id, round_id), a, b, x, y)

    @shown_as_gr_error
    def open_picked(self, a, b, session_id: str, pair_round: str, round_id: str | None, x: str | None,
                    y: str | None) -> dict:
        """Compare the candidates chosen in the A and B menus (once both are chosen)."""
        if a is None or b is None or a == "" or b == "":
            return {}
        a, b = _pair(a, b)
        return self.view(self._round(session_id, pair_round or round_id), a, b, x, y)

    def _store_vote(self, session_id: str, round_id: str, a, b, outcome: str) -> str:
        """Store a vote; returns what it said, in words."""
        if not round_id:
            raise UserError("Open a comparison before voting.")
        request = validation.check(validation.VoteRequest, session_id=session_id, round_id=round_id, a=a, b=b,
                                   outcome=outcome)
        vote = self.explorer.vote(request.session_id, request.round_id, request.a, request.b, request.outcome)
        said = {"a": f"A (#{vote.a_index}) is better than B (#{vote.b_index})",
                "b": f"B (#{vote.b_index}) is better than A (#{vote.a_index})",
                "tie": f"#{vote.a_index} and #{vote.b_index} are a tie",
                "both_bad": f"#{vote.a_index} and #{vote.b_index} are both bad"}[vote.outcome]
        n = len(self.explorer.list_votes(request.session_id))
        return f"Vote stored ({n} in this session): {said}."

    @shown_as_gr_error
    def vote(self, session_id: str, round_id: str, a, b, x: str | None, y: str | None, evt: gr.EventData,
             client: gr.Request | None = None) -> dict:
        """Store the page's vote and show the next pair in the same reply, so the next click or key lands on it."""
        self.h.admission.allow(visitor_of(client), "vote")
        clicked = getattr(evt, "target", None)
        outcome = VOTE_BUTTONS.get(getattr(clicked, "elem_id", None), (None, ""))[1]
        said = self._store_vote(session_id, round_id, a, b, outcome)
        rnd = self._round(session_id, round_id)
        return self._next(rnd, x, y, said=f"{said} Next: the pair your arrow is least sure about. ")

    @shown_as_gr_error
    def api_vote(self, session_id: str, round_id: str, a_index: int, b_index: int, outcome: str,
                 client: gr.Request | None = None) -> str:
        """Store a vote ("a", "b", "tie" or "both_bad") on two candidates of a round; says what it stored."""
        self.h.admission.allow(visitor_of(client), "vote")
        return self._store_vote(session_id, round_id, a_index, b_index, outcome)

    @shown_as_gr_error
    def learned_summary(self, session_id: str, round_id: str | None, x: str | None = None,
                        y: str | None = None) -> dict:
        """The session's learned direction in words, and "use my direction" enabled when there is one."""
        cc = self.cc
        if not session_id or not round_id:
            return {cc.learned: "", cc.use_mine: gr.Button(interactive=False)}
        session_id = validation.session_id(session_id)
        rnd = self.h.round_of(session_id, round_id)
        x, y = render.default_axes(rnd, x, y)
        n_decisive, _ = compare_view.fit_scope(self.explorer, session_id, rnd, x, y)
        learned = compare_view.learned_for(self.explorer, session_id, rnd, x, y)
        return {cc.learned: compare_view.learned_markdown(learned, n_decisive, len(rnd.objectives)),
                cc.use_mine: gr.Button(interactive=learned is not None)}

    @shown_as_gr_error
    def refresh_learned(self, session_id: str, round_id: str | None, x: str | None, y: str | None) -> dict:
        """After a vote: the learned direction in words and drawn on the plot."""
        out = self.learned_summary(session_id, round_id, x, y)
        if session_id and round_id:
            rnd = self.h.round_of(session_id, round_id)
            out[self.c.widget] = self.h.round_view(rnd, x, y, figures=False)[self.c.widget]
        return out

    @shown_as_gr_error
    def use_mine(self, session_id: str, round_id: str | None, x: str | None, y: str | None) -> dict:
        """Rank the current round by the learned direction and store it as the round's direction."""
        rnd = self._round(session_id, round_id)
        x, y = render.default_axes(rnd, x, y)
        learned = compare_view.learned_for(self.explorer, session_id, rnd, x, y)
        if learned is None:
            raise UserError("No direction learned yet: vote on more pairs with a winner.")
        ranked = self.explorer.rerank(rnd.round_id, learned.direction, session_id)
        rnd = self.explorer.get_round(rnd.round_id, session_id)
        best = rnd.candidates[ranked.best].index
        return {**self.h.round_view(rnd, x, y),
                self.c.status: f"Using your direction ({render.direction_label(learned.direction)}); top: #{best}."}

    @shown_as_gr_error
    def export(self, session_id: str, fmt: str) -> tuple[str, str]:
        """Write the session in a format to a temporary file for download; returns (path, status)."""
        if not session_id:
            raise UserError("No session to export yet.")
        request = validation.check(validation.ExportRequest, session_id=session_id, fmt=fmt)
        session_id, fmt = request.session_id, request.fmt
        text = self.explorer.export_session(session_id, fmt)
        ext = EXPORT_EXTENSIONS[fmt]
        path = Path(tempfile.mkdtemp(prefix="mo-explorer-export-")) / f"mo-explorer-{session_id[:8]}-{fmt}.{ext}"
        path.write_text(text, encoding="utf-8")
        if fmt == "trl":
            note = f"{text.count(chr(10))} preference pair(s); ties and both-bad votes are left out"
        else:
            note = f"{len(text.encode('utf-8'))} bytes"
        return str(path), f"Exported the session as {fmt}: {note}."

    @shown_as_gr_error
    def import_session(self, path: str | None, client: gr.Request | None = None) -> dict:
        """Restore a json export as a new session and switch the page to it."""
        if not path or not isinstance(path, str):
            raise UserError("Choose a json export to import.")
        self.h.admission.allow(visitor_of(client), "import")
        file = Path(path)
        if file.stat().st_size > validation.MAX_IMPORT_BYTES:
            raise UserError(f"That file is over {validation.MAX_IMPORT_BYTES // 2**20} MB; not a session export.")
        session_id = self.explorer.import_session(file.read_bytes())
        rounds = self.explorer.session_rounds(session_id)
        view = self.h.round_view(rounds[-1], None, None) if rounds else {}
        return {**self.h.empty_view(), **view, self.c.session: session_id,
                **self.h.rounds_view(session_id, rounds[-1].round_id if rounds else None),
                self.c.status: f"Imported a session with {len(rounds)} round(s); it is a new session."}


def wire_compare(c: Components, cc: CompareComponents, ch: CompareHandlers) -> None:
    """Connect the comparison's events; the vote is `/vote`, the export `/export` in the API."""
    shown = [cc.a_pick, cc.b_pick, cc.prompt, cc.a_text, cc.b_text, cc.bars, cc.wins, cc.pair_round, cc.vote_status,
             *cc.votes]
    axes = [c.x_axis, c.y_axis]
    cc.next_pair.click(ch.next_pair, inputs=[c.session, c.round_id, *axes], outputs=shown, api_visibility="private")
    cc.open_default.click(ch.open_default, inputs=[c.session, c.round_id, *axes], outputs=shown,
                          api_visibility="private")
    cc.open_clicked.click(ch.open_clicked, inputs=[c.session, c.round_id, c.selected, *axes], outputs=shown,
                          api_visibility="private")
    gr.on([cc.a_pick.input, cc.b_pick.input], ch.open_picked,
          inputs=[cc.a_pick, cc.b_pick, c.session, cc.pair_round, c.round_id, *axes], outputs=shown,
          api_visibility="private")
    learned_out = [c.widget, cc.learned, cc.use_mine]
    gr.on([button.click for button in cc.votes], ch.vote,
          inputs=[c.session, cc.pair_round, cc.a_pick, cc.b_pick, *axes], outputs=shown, show_progress="hidden",
          api_name="vote_on_page", api_visibility="private", trigger_mode="once",
          ).success(ch.refresh_learned, inputs=[c.session, c.round_id, *axes], outputs=learned_out,
                    api_visibility="private", show_progress="hidden")
    gr.api(ch.api_vote, api_name="vote")
    gr.on([c.session.change, c.round_id.change], ch.learned_summary, inputs=[c.session, c.round_id, *axes],
          outputs=[cc.learned, cc.use_mine], api_visibility="private", show_progress="hidden")
    c.round_id.change(ch.cleared, outputs=shown, api_visibility="private", show_progress="hidden")
    cc.use_mine.click(ch.use_mine, inputs=[c.session, c.round_id, *axes],
                      outputs=[c.widget, c.round_id, c.gating, c.parallel, *axes, c.status],
                      api_visibility="private")
    cc.export.click(ch.export, inputs=[c.session, cc.export_format], outputs=[cc.export_file, cc.export_status],
                    api_name="export")
    cc.import_file.upload(ch.import_session, inputs=[cc.import_file],
                          outputs=[c.widget, c.round_id, c.gating, c.parallel, *axes, c.status, c.session,
                                   c.rounds, c.selected, c.response], api_visibility="private")
