"""The Pareto widget: a gr.HTML custom component whose drawing, dragging and reranking run in the browser.

Python sets its value to `plotting.widget_payload(...)`; the browser (assets/pareto/*.js) draws the figure with
Plotly, lets the user drag the direction arrow and reranks on every frame. Two custom events come back:
`direction` on release (data: round_id, objectives, weights, method, angle) and `select` when a point or a
card is clicked (data: round_id, index).
"""

from __future__ import annotations

import gradio as gr

from mo_explorer.ui import assets

# The template never mentions ${value}: re-rendering it on a new value is then a no-op, so the nodes the
# script builds inside the element survive every update; the script redraws from props.value itself.
TEMPLATE = '<div class="moex-host"></div>'
ON_LOAD = ("MoExplorer.mount(element, props, watch, {"
           "direction: (d) => trigger('direction', d), select: (d) => trigger('select', d)});")


def pareto_widget(**kwargs) -> gr.HTML:
    """The widget component (value: a payload dict or None)."""
    return gr.HTML(value=None, html_template=TEMPLATE, js_on_load=ON_LOAD, head=assets.widget_head(),
                   apply_default_css=False, elem_id="pareto-widget", **kwargs)
