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

from mo_explorer.errors import UserError
from mo_explorer.schema import Round
from mo_explorer.ui import compare_view, render
from mo_explorer.ui.handlers import Handlers, shown_as_gr_error
from mo_explorer.ui.layout import Components

log = logging.getLogger(__name__)

INTRO = """## Compare two candidates
**Compare** puts the reward model's pick (best gated score) beside your direction's pick; or click two points
or cards and **Compare the last two clicked**, or choose A and B. Then vote: each vote is stored, and after two
votes with a winner the page learns your direction from them (the dashed arrow on the plot)."""
PROMPT_TO_VOTE = "Which one is better? Vote below."
EXPORT_EXTENSIONS = {"trl": "jsonl", "json": "json", "csv": "csv"}
MAX_IMPORT_BYTES = 50 * 1024 * 1024
# elem_id of each vote button -> the outcome it records (the arena's four buttons)
VOTE_BUTTONS = {"vote-a": ("A is better", "a"), "vote-b": ("B is better", "b"), "vote-tie": ("Tie", "tie"),
                "vote-both-bad": ("Both are bad", "both_bad")}


@dataclass
class CompareComponents:
    """The comparison's components (built inside the page's gr.Blocks)."""

    a_pick: gr.Dropdown
    b_pick: gr.Dropdown
    open_default: gr.Button
    open_clicked: gr.Button
    a_text: gr.Markdown
    b_text: gr.Markdown
    votes: list[gr.Button]
    vote_status: gr.Markdown
    bars: gr.Plot
    wins: gr.Markdown
    learned: gr.Markdown
    use_mine: gr.Button
    pair_round: gr.Textbox  # hidden: the round whose candidates are compared (a vote names it)
    outcome: gr.Textbox  # hidden: the outcome for API callers; the page's buttons say theirs themselves
    export_format: gr.Radio
    export: gr.Button
    export_file: gr.File
    import_file: gr.UploadButton


def build_compare() -> CompareComponents:
    """Create and place the comparison, votes, learned direction and export; call inside `with gr.Blocks():`."""
    gr.Markdown(INTRO, elem_id="compare-intro")
    with gr.Row(equal_height=True):
        a_pick = gr.Dropdown(label="A", choices=[], interactive=True, allow_custom_value=True, elem_id="pick-a")
        b_pick = gr.Dropdown(label="B", choices=[], interactive=True, allow_custom_value=True, elem_id="pick-b")
        open_default = gr.Button("Compare: gate's pick vs your direction's pick", variant="primary",
                                 elem_id="compare-open")
        open_clicked = gr.Button("Compare the last two clicked", elem_id="compare-clicked")
    with gr.Row(equal_height=False):
        a_text = gr.Markdown("", elem_id="side-a", sanitize_html=True)
        b_text = gr.Markdown("", elem_id="side-b", sanitize_html=True)
    with gr.Row():
        votes = [gr.Button(label, interactive=False, elem_id=elem_id) for elem_id, (label, _) in VOTE_BUTTONS.items()]
    vote_status = gr.Markdown("", elem_id="vote-status")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            bars = gr.Plot(label="A and B on every objective", elem_id="compare-bars")
        with gr.Column(scale=2):
            wins = gr.Markdown("", elem_id="compare-wins")
            learned = gr.Markdown("", elem_id="learned")
            use_mine = gr.Button("Use my direction", interactive=False, elem_id="use-mine")
    pair_round = gr.Textbox(visible=False, elem_id="pair-round")
    outcome = gr.Textbox(visible=False, elem_id="vote-outcome")
    with gr.Accordion("Export or import this session", open=False, elem_id="export-panel"):
        with gr.Row(equal_height=False):
            export_format = gr.Radio([("TRL preference pairs (jsonl)", "trl"), ("whole session (json)", "json"),
                                      ("candidates (csv)", "csv")], value="trl", label="Format",
                                     elem_id="export-format")
            export = gr.Button("Export", elem_id="export", size="md")
            import_file = gr.UploadButton("Import a json export…", file_types=[".json"], elem_id="import", size="md")
        export_file = gr.File(label="Download", interactive=False, elem_id="export-file")
    return CompareComponents(a_pick, b_pick, open_default, open_clicked, a_text, b_text, votes, vote_status, bars,
                             wins, learned, use_mine, pair_round, outcome, export_format, export, export_file,
                             import_file)


def _index(value) -> int:
    """A candidate index from a dropdown or API value."""
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise UserError(f"pick a candidate for A and for B (got {value!r})") from exc


class CompareHandlers:
    """The comparison's events, for one Explorer and the page's components and handlers."""

    def __init__(self, explorer, c: Components, cc: CompareComponents, h: Handlers):
        self.explorer, self.c, self.cc, self.h = explorer, c, cc, h

    def _round(self, session_id: str, round_id: str | None) -> Round:
        if not round_id:
            raise UserError("Generate a round first: there is nothing to compare yet.")
        return self.explorer.get_round(round_id, session_id or None)

    def view(self, rnd: Round, a: int, b: int, x: str | None, y: str | None) -> dict:
        """Both sides, the bars, where each wins, and the vote buttons enabled (both texts are shown)."""
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
                cc.a_text: compare_view.side_markdown(rnd, a, "A"), cc.b_text: compare_view.side_markdown(rnd, b, "B"),
                cc.bars: compare_view.bars_figure(rnd, a, b), cc.wins: compare_view.wins_markdown(rnd, a, b, x, y),
                cc.pair_round: rnd.round_id, cc.vote_status: PROMPT_TO_VOTE,
                **{button: gr.Button(interactive=True) for button in cc.votes}}

    def cleared(self) -> dict:
        """No comparison shown (a new round or session): votes disabled until both texts are shown again."""
        cc = self.cc
        return {cc.a_pick: gr.Dropdown(choices=[], value=None), cc.b_pick: gr.Dropdown(choices=[], value=None),
                cc.a_text: "", cc.b_text: "", cc.bars: None, cc.wins: "", cc.pair_round: "", cc.vote_status: "",
                **{button: gr.Button(interactive=False) for button in cc.votes}}

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
        if not selected or len(selected) < 2:
            raise UserError("Click two points or cards first (the last two clicked are compared).")
        return self.view(self._round(session_id, round_id), int(selected[-2]), int(selected[-1]), x, y)

    @shown_as_gr_error
    def open_picked(self, a, b, session_id: str, pair_round: str, round_id: str | None, x: str | None,
                    y: str | None) -> dict:
        """Compare the candidates chosen in the A and B menus (once both are chosen)."""
        if a is None or b is None or a == "" or b == "":
            return {}
        return self.view(self._round(session_id, pair_round or round_id), _index(a), _index(b), x, y)

    @shown_as_gr_error
    def vote(self, session_id: str, round_id: str, a, b, outcome: str, evt: gr.EventData) -> dict:
        """Store a vote on the pair shown (the clicked button says which outcome; API callers pass it)."""
        clicked = getattr(evt, "target", None) if evt is not None else None
        outcome = VOTE_BUTTONS.get(getattr(clicked, "elem_id", None), (None, outcome))[1]
        if not round_id:
            raise UserError("Open a comparison before voting.")
        vote = self.explorer.vote(session_id, round_id, _index(a), _index(b), str(outcome or ""))
        said = {"a": f"A (#{vote.a_index}) is better than B (#{vote.b_index})",
                "b": f"B (#{vote.b_index}) is better than A (#{vote.a_index})",
                "tie": f"#{vote.a_index} and #{vote.b_index} are a tie",
                "both_bad": f"#{vote.a_index} and #{vote.b_index} are both bad"}[vote.outcome]
        n = len(self.explorer.store.list_votes(session_id))
        return {self.cc.vote_status: f"Vote stored ({n} in this session): {said}. Pick another pair to vote again.",
                **{button: gr.Button(interactive=False) for button in self.cc.votes}}

    @shown_as_gr_error
    def learned_summary(self, session_id: str, round_id: str | None) -> dict:
        """The session's learned direction in words, and "use my direction" enabled when there is one."""
        cc = self.cc
        if not session_id:
            return {cc.learned: "", cc.use_mine: gr.Button(interactive=False)}
        learned = compare_view.learned_for(self.explorer, session_id)
        decisive = sum(v.outcome in ("a", "b") for v in self.explorer.store.list_votes(session_id))
        return {cc.learned: compare_view.learned_markdown(learned, decisive),
                cc.use_mine: gr.Button(interactive=learned is not None and bool(round_id))}

    @shown_as_gr_error
    def refresh_learned(self, session_id: str, round_id: str | None, x: str | None, y: str | None) -> dict:
        """After a vote: the learned direction in words and drawn on the plot."""
        out = self.learned_summary(session_id, round_id)
        if session_id and round_id:
            rnd = self.explorer.get_round(round_id, session_id)
            out[self.c.widget] = self.h.round_view(rnd, x, y, figures=False)[self.c.widget]
        return out

    @shown_as_gr_error
    def use_mine(self, session_id: str, round_id: str | None, x: str | None, y: str | None) -> dict:
        """Rank the current round by the learned direction and store it as the round's direction."""
        learned = compare_view.learned_for(self.explorer, session_id)
        if learned is None:
            raise UserError("No direction learned yet: vote on at least two pairs with a winner.")
        rnd = self._round(session_id, round_id)
        ranked = self.explorer.rerank(rnd.round_id, learned.direction, session_id, store=True)
        rnd = self.explorer.get_round(rnd.round_id, session_id)
        best = rnd.candidates[ranked.best].index
        return {**self.h.round_view(rnd, x, y),
                self.c.status: f"Using your direction ({render.direction_label(learned.direction)}); top: #{best}."}

    @shown_as_gr_error
    def export(self, session_id: str, fmt: str) -> tuple[str, str]:
        """Write the session in a format to a temporary file for download; returns (path, status)."""
        if not session_id:
            raise UserError("No session to export yet.")
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
    def import_session(self, path: str | None) -> dict:
        """Restore a json export as a new session and switch the page to it."""
        if not path:
            raise UserError("Choose a json export to import.")
        file = Path(path)
        if file.stat().st_size > MAX_IMPORT_BYTES:
            raise UserError(f"That file is over {MAX_IMPORT_BYTES // 2**20} MB; not a session export.")
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UserError("That file is not text; choose a json export.") from exc
        session_id = self.explorer.import_session(text)
        rounds = self.explorer.session_rounds(session_id)
        view = self.h.round_view(rounds[-1], None, None) if rounds else {}
        return {**self.h.empty_view(), **view, self.c.session: session_id,
                **self.h.rounds_view(session_id, rounds[-1].round_id if rounds else None),
                self.c.status: f"Imported a session with {len(rounds)} round(s); it is a new session."}


def wire_compare(c: Components, cc: CompareComponents, ch: CompareHandlers) -> None:
    """Connect the comparison's events; the vote is `/vote`, the export `/export`."""
    shown = [cc.a_pick, cc.b_pick, cc.a_text, cc.b_text, cc.bars, cc.wins, cc.pair_round, cc.vote_status,
             *cc.votes]
    axes = [c.x_axis, c.y_axis]
    cc.open_default.click(ch.open_default, inputs=[c.session, c.round_id, *axes], outputs=shown,
                          api_visibility="private")
    cc.open_clicked.click(ch.open_clicked, inputs=[c.session, c.round_id, c.selected, *axes], outputs=shown,
                          api_visibility="private")
    gr.on([cc.a_pick.input, cc.b_pick.input], ch.open_picked,
          inputs=[cc.a_pick, cc.b_pick, c.session, cc.pair_round, c.round_id, *axes], outputs=shown,
          api_visibility="private")
    learned_out = [c.widget, cc.learned, cc.use_mine]
    gr.on([button.click for button in cc.votes], ch.vote,
          inputs=[c.session, cc.pair_round, cc.a_pick, cc.b_pick, cc.outcome],
          outputs=[cc.vote_status, *cc.votes], api_name="vote", show_progress="hidden",
          ).success(ch.refresh_learned, inputs=[c.session, c.round_id, *axes], outputs=learned_out,
                    api_visibility="private", show_progress="hidden")
    c.session.change(ch.learned_summary, inputs=[c.session, c.round_id], outputs=[cc.learned, cc.use_mine],
                     api_visibility="private", show_progress="hidden")
    c.round_id.change(ch.cleared, outputs=shown, api_visibility="private", show_progress="hidden")
    cc.use_mine.click(ch.use_mine, inputs=[c.session, c.round_id, *axes],
                      outputs=[c.widget, c.round_id, c.gating, c.parallel, *axes, c.status],
                      api_visibility="private")
    cc.export.click(ch.export, inputs=[c.session, cc.export_format], outputs=[cc.export_file, c.status],
                    api_name="export")
    cc.import_file.upload(ch.import_session, inputs=[cc.import_file],
                          outputs=[c.widget, c.round_id, c.gating, c.parallel, *axes, c.status, c.session,
                                   c.rounds, c.selected, c.response], api_visibility="private")
