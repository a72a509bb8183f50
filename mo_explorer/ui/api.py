"""The app's programmatic endpoints (`/generate`, `/rerank`), typed for gradio_client and the API page."""

from __future__ import annotations

import gradio as gr

from mo_explorer import ranking, summary, validation
from mo_explorer.admission import Admission
from mo_explorer.errors import UserError
from mo_explorer.ui.handlers import shown_as_gr_error
from mo_explorer.ui.visitors import visitor_of


class Api:
    """Functions registered with gr.api: JSON in, JSON out, the same core calls as the page."""

    def __init__(self, explorer, admission: Admission | None = None):
        self.explorer = explorer
        # The page's, when built with it: rounds of the API queue and count with those of the page.
        self.admission = admission or Admission(explorer.settings.visitors, explorer.housekeeper.storage_full)

    def generate(self, prompt: str, n: int = 4, temperature: float = 0.8, top_p: float = 0.95,
                 max_new_tokens: int = 128, seed: int = 0, session_id: str = "", steer: dict | None = None,
                 client: gr.Request | None = None) -> dict:
        """Generate, score and store one round; returns its summary (candidates, rewards, gating, Pareto front).

        steer, {"objectives": [...], "weights": [...], "method": "linear"}: write the round along that direction."""
        return _generate(self.explorer, prompt, n, temperature, top_p, max_new_tokens, seed, session_id, steer,
                         admission=self.admission, visitor=visitor_of(client))

    def rerank(self, round_id: str, weights: list[float] | None = None, method: str = "linear",
               session_id: str = "", objectives: list[str] | None = None, angle: float | None = None) -> dict:
        """Rank a stored round by a direction and store it: weights over `objectives` (default: the round's
        objectives in order, the first len(weights) of them), or an angle in degrees over the first two."""
        return _rerank(self.explorer, round_id, weights, method, session_id, objectives, angle)


@shown_as_gr_error
def _generate(explorer, prompt, n, temperature, top_p, max_new_tokens, seed, session_id, steer=None, *,
              admission: Admission, visitor: str | None) -> dict:
    request = validation.check(validation.GenerateRequest, prompt=prompt, n=n, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, seed=seed, session_id=session_id, steer=steer)
    params = request.params()
    with admission.round(visitor, params.n, params.max_new_tokens) as ticket:  # waits its turn, maybe smaller
        rnd = explorer.run_round(request.prompt, ticket.applied(params), request.session_id or None)
        ticket.completed = True
    return summary.round_summary(rnd)


@shown_as_gr_error
def _rerank(explorer, round_id, weights, method, session_id, objectives, angle) -> dict:
    request = validation.check(validation.RerankRequest, round_id=round_id, weights=weights, method=method,
                               session_id=session_id, objectives=objectives, angle=angle)
    rnd = explorer.get_round(request.round_id, request.session_id)
    weights = request.weights
    if request.angle is not None and not weights:
        weights = ranking.angle_to_weights(request.angle).tolist()
    if not weights:
        raise UserError("give weights (one per objective) or an angle")
    names = list(request.objectives) if request.objectives else list(rnd.objectives[:len(weights)])
    if len(names) != len(weights):
        raise UserError(f"{len(weights)} weights for {len(names)} objectives")
    direction = validation.direction(names, weights, request.method)
    ranked = explorer.rerank(rnd.round_id, direction, rnd.session_id)
    return summary.round_summary(explorer.get_round(rnd.round_id, rnd.session_id), ranked)
