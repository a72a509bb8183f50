"""Build and launch the page: `build_demo(explorer, settings)` wires components to handlers; nothing at import."""

from __future__ import annotations

import logging

import gradio as gr

from mo_explorer import objectives
from mo_explorer.admission import Admission
from mo_explorer.config import Settings
from mo_explorer.ui import assets
from mo_explorer.ui.api import Api
from mo_explorer.ui.compare import CompareHandlers, build_compare, wire_compare
from mo_explorer.ui.handlers import Handlers
from mo_explorer.ui.layout import Components, build_components

log = logging.getLogger(__name__)
# Every event that calls the models shares one concurrency group. Their handlers start at once, up to the cap on
# waiting rounds (plus one, so the first round too many is refused with a message, not held): each round then
# waits its turn in the Admission queue, where the page can say how many are ahead, make it smaller under load or
# refuse it. The models still run one round at a time, on the one model thread. In Gradio's own queue the rounds
# would wait before any handler ran, out of the page's sight.
MODEL_QUEUE = {"concurrency_id": "models", "concurrency_limit": 1}
# A generator on a server (openai:) decodes elsewhere and batches rounds there: several rounds run at once, and
# only their scoring takes turns on this process's model thread.
REMOTE_ROUNDS_AT_ONCE = 8


def model_queue(explorer) -> dict:
    """The concurrency of events that call the models: the admission cap, or REMOTE_ROUNDS_AT_ONCE when served."""
    if getattr(explorer.generator, "runs_locally", True):
        return {**MODEL_QUEUE, "concurrency_limit": explorer.settings.visitors.max_waiting_rounds + 1}
    return {**MODEL_QUEUE, "concurrency_limit": REMOTE_ROUNDS_AT_ONCE}
CHEAP_EVENTS_AT_ONCE = 8  # reads and small writes; SQLite's WAL lets readers run beside the one writer

# Keeps the address bar's ?session= in step with the session shown, so a reload resumes it.
SESSION_URL_JS = """(sid) => {
  if (sid) {
    const url = new URL(window.location.href);
    url.searchParams.set("session", sid);
    window.history.replaceState(null, "", url.toString());
  }
  return [];
}"""


# The opened response is brought into view (beside the lists on a desktop, above the plot on a phone).
SHOW_RESPONSE_JS = """() => {
  document.getElementById("response")?.scrollIntoView({ behavior: "smooth", block: "nearest" });
  return [];
}"""


def wire(c: Components, h: Handlers, queue: dict = MODEL_QUEUE) -> None:
    """Connect every event; main flows read as the user's: generate, drag, click, switch, new session."""
    params = [c.prompt, c.n, c.temperature, c.top_p, c.max_new_tokens, c.seed, c.session, c.x_axis, c.y_axis]
    round_outputs = [c.widget, c.round_id, c.gating, c.parallel, c.x_axis, c.y_axis]
    page = [*round_outputs, c.status, c.session, c.rounds, c.selected, c.response]
    # preprocess=False: the sliders' own conversion fails on text or NaN with a traceback; the handler checks
    # the raw values itself (validation.GenerateRequest) and says which one is wrong.
    streamed = [*round_outputs, c.status, c.rounds, c.selected, c.direction_status]
    gen = dict(fn=h.generate, inputs=params, outputs=streamed,
               show_progress_on=[c.status], api_visibility="undocumented", api_name="generate_stream",
               preprocess=False, **queue)
    c.share.click(h.share, inputs=[c.session], outputs=[c.share_link], api_visibility="private")
    c.generate.click(**gen)
    # Write along the arrow: a steered round for the shown round's prompt, streamed onto the plot as Generate's is.
    c.steer.click(**{**gen, "fn": h.write_along, "api_name": "write_along",
                     "inputs": [c.round_id, c.session, c.n, c.temperature, c.top_p, c.max_new_tokens, c.seed,
                                c.x_axis, c.y_axis]})
    c.round_id.change(lambda shown: gr.Button(interactive=bool(shown)), inputs=[c.round_id], outputs=[c.steer],
                      api_visibility="private", show_progress="hidden")
    c.prompt.submit(**{**gen, "api_name": "generate_on_enter", "api_visibility": "private"})
    c.widget.direction(h.store_direction, inputs=[c.session], outputs=[c.parallel, c.direction_status],
                       api_visibility="undocumented", api_name="store_direction", show_progress="hidden")
    c.widget.select(h.select, inputs=[c.session, c.selected], outputs=[c.response, c.selected],
                    api_visibility="undocumented", api_name="select_candidate", show_progress="hidden",
                    ).then(None, js=SHOW_RESPONSE_JS, api_visibility="private")
    gr.on([c.x_axis.input, c.y_axis.input], h.change_axes, inputs=[c.x_axis, c.y_axis, c.round_id, c.session],
          outputs=round_outputs, api_visibility="private", show_progress="hidden")
    c.rounds.input(h.switch_round, inputs=[c.rounds, c.session, c.x_axis, c.y_axis],
                   outputs=[*round_outputs, c.selected, c.status, c.response, c.direction_status],
                   api_visibility="private")
    c.new_session.click(h.new_session, outputs=page, api_visibility="private")
    c.session.change(None, inputs=[c.session], js=SESSION_URL_JS, api_visibility="private")


def build_demo(explorer, settings: Settings) -> gr.Blocks:
    """The whole page for one Explorer, with the API endpoints `generate`, `rerank`, `vote` and `export`."""
    assets.register_static_files()
    with gr.Blocks(title="mo-explorer") as demo:
        c = build_components(settings, objectives.trust_line(explorer.trust))
        cc = build_compare()  # below the plot and lists
        # one queue of rounds and one count per visitor for the page and its API
        admission = Admission(settings.visitors, explorer.housekeeper.storage_full)
        handlers = Handlers(explorer, c, admission)
        queue = model_queue(explorer)
        wire(c, handlers, queue)
        compare_handlers = CompareHandlers(explorer, c, cc, handlers)
        wire_compare(c, cc, compare_handlers)
        api = Api(explorer, admission)
        gr.api(api.generate, api_name="generate", **queue)
        gr.api(api.rerank, api_name="rerank")
        demo.load(handlers.load_page, outputs=[c.widget, c.round_id, c.gating, c.parallel, c.x_axis, c.y_axis,
                                               c.status, c.session, c.rounds, c.selected, c.response],
                  api_visibility="private")
    demo.mo_components = c  # for tests and for features added to this page later
    demo.mo_handlers = handlers
    demo.mo_compare = cc
    demo.mo_compare_handlers = compare_handlers
    return demo


def launch_options(settings: Settings) -> dict:
    """Keyword arguments for Blocks.launch from the settings (theme and CSS go to launch in Gradio 6)."""
    return {"server_name": settings.server.host, "server_port": settings.server.port,
            "theme": gr.themes.Soft(), "footer_links": ["api"]}


def serve(demo: gr.Blocks, settings: Settings, **kwargs) -> gr.Blocks:
    """Queue and launch a built page (blocks until the server stops unless prevent_thread_lock=True)."""
    # Events that call the models share one concurrency group (MODEL_QUEUE); every other event (rerank, select, vote,
    # export, page load: milliseconds of work) runs beside them instead of waiting behind a generation.
    demo.queue(default_concurrency_limit=CHEAP_EVENTS_AT_ONCE)
    log.info("serving on http://%s:%s", settings.server.host, settings.server.port)
    demo.launch(**{**launch_options(settings), **kwargs})
    return demo


def launch(explorer, settings: Settings, share: bool = False, **kwargs) -> gr.Blocks:
    """Build the page for an Explorer and serve it (`python -m mo_explorer serve`)."""
    return serve(build_demo(explorer, settings), settings, share=share, **kwargs)
