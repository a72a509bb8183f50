"""The page's components, laid out in the user's order: prompt, plot and lists, then the details."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from mo_explorer.config import Settings
from mo_explorer.ui import render
from mo_explorer.ui.widget import pareto_widget

INTRO = """# mo-explorer
Type a prompt and **Generate**: answers land on the plot as they are scored. **Drag the red arrow's head**: the
answer farthest along it ranks first, and the ring shows which answer wins at each angle. Click a point or a card
to read it. **Write along the arrow** writes new answers steered where the arrow points."""


CLICK_TO_READ = ""  # the widget's status line already says "click a point or a card to read it"


@dataclass
class Components:
    """Every component an event reads or writes (built inside a gr.Blocks context)."""

    prompt: gr.Textbox
    n: gr.Slider
    temperature: gr.Slider
    top_p: gr.Slider
    max_new_tokens: gr.Slider
    seed: gr.Number
    generate: gr.Button
    status: gr.Markdown
    direction_status: gr.Markdown  # beside the plot: what happened to the dragged arrow
    steer: gr.Button  # "Write along the arrow": a steered round for the shown round's prompt
    session: gr.Textbox
    rounds: gr.Dropdown
    new_session: gr.Button
    share: gr.Button
    share_link: gr.Markdown  # the read-only link, said next to the button that made it
    x_axis: gr.Dropdown
    y_axis: gr.Dropdown
    widget: gr.HTML
    gating: gr.Plot
    parallel: gr.Plot
    response: gr.Markdown
    round_id: gr.State
    selected: gr.State  # the last two clicked candidate indices, for the side-by-side comparison


def _prompt_panel(settings: Settings) -> dict:
    """Prompt box and Generate first (on a phone the plot follows right after), then examples and parameters."""
    d, lim = settings.defaults, settings.limits
    prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Ask the model something…", elem_id="prompt")
    generate = gr.Button("Generate", variant="primary", elem_id="generate")
    status = gr.Markdown("", elem_id="status")
    with gr.Accordion("Examples and parameters", open=False, elem_id="parameters"):
        gr.Examples(examples=[[p] for p in render.load_examples()], inputs=[prompt], label="Examples")
        n = gr.Slider(1, lim.candidates, value=d.n, step=1, label="Candidates (N)", elem_id="param-n")
        temperature = gr.Slider(0.0, 2.0, value=d.temperature, step=0.05, label="Temperature")
        top_p = gr.Slider(0.05, 1.0, value=d.top_p, step=0.05, label="Top-p")
        max_new_tokens = gr.Slider(1, lim.max_new_tokens, value=d.max_new_tokens, step=1, label="Max new tokens",
                                   elem_id="param-max-new-tokens")
        seed = gr.Number(value=0, precision=0, label="Seed")
    return {"prompt": prompt, "n": n, "temperature": temperature, "top_p": top_p,
            "max_new_tokens": max_new_tokens, "seed": seed, "generate": generate, "status": status}


def build_components(settings: Settings, trust_line: str = "") -> Components:
    """Create and place every component; call inside `with gr.Blocks():`. `trust_line`: one line under the gate
    chart saying how far the reward model's score is to be trusted (objectives.trust_line)."""
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            panel = _prompt_panel(settings)
            with gr.Accordion("Session", open=False, elem_id="session-panel"):
                session = gr.Textbox(label="Session id (in the URL as ?session=…)", interactive=False,
                                     elem_id="session-id")
                rounds = gr.Dropdown(label="Rounds of this session", choices=[], interactive=True, elem_id="rounds")
                new_session = gr.Button("New session", size="sm", elem_id="new-session")
                share = gr.Button("Share a read-only copy", size="sm", elem_id="share")
                share_link = gr.Markdown("", elem_id="share-link")
            response = gr.Markdown(CLICK_TO_READ, elem_id="response", sanitize_html=True)
        with gr.Column(scale=2, min_width=340):
            with gr.Row():
                x_axis = gr.Dropdown(label="x axis", choices=[], interactive=True, elem_id="x-axis")
                y_axis = gr.Dropdown(label="y axis", choices=[], interactive=True, elem_id="y-axis")
            direction_status = gr.Markdown("", elem_id="direction-status")
            steer = gr.Button("Write along the arrow", variant="secondary", interactive=False, elem_id="steer")
            widget = pareto_widget()
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            parallel = gr.Plot(label="All objectives (normalised, up is better; thick line: first by your arrow)",
                               elem_id="parallel")
        with gr.Column(scale=1):
            gating = gr.Plot(label="Gate: what the reward model weighs for this prompt", elem_id="gating")
            gr.Markdown(trust_line, elem_id="trust")
    # The side-by-side comparison and votes go below this row (ui/compare.py).
    return Components(**panel, direction_status=direction_status, steer=steer, session=session, rounds=rounds,
                      new_session=new_session, share=share, share_link=share_link, x_axis=x_axis, y_axis=y_axis,
                      widget=widget, gating=gating,
                      parallel=parallel, response=response,
                      round_id=gr.State(None), selected=gr.State([]))
