"""What the side-by-side comparison shows, built from schema types without gradio: the default pair, both
texts as escaped Markdown, per-objective bars and their differences, where each one wins, the learned direction.

Model output is untrusted: texts go through `render.safe_markdown`, names through `render.escape_html`.
"""

from __future__ import annotations

import numpy as np

from mo_explorer import plotting, ranking
from mo_explorer.schema import Direction, Round, prompt_text
from mo_explorer.ui import render

MAX_ANGLE_STD = 180.0  # an angle that uncertain covers the whole circle


def positions(rnd: Round) -> dict[int, int]:
    """Candidate index -> its position in rnd.candidates (the rows of the round's matrices)."""
    return rnd.positions()


def default_pair(rnd: Round, direction: Direction | None) -> tuple[int, int]:
    """(A, B): the gate's winner (best gated score) and the direction's winner, or its runner-up if the same."""
    if len(rnd.candidates) < 2:
        raise ValueError("a comparison needs a round with at least two candidates")
    idx = [c.index for c in rnd.candidates]
    gate = int(np.argmax(rnd.scores()))  # first maximum on ties, like the ranked list
    if direction is None:
        order = ranking.rank_values(rnd.scores()).order
    else:
        order = ranking.rank(rnd.reward_matrix(), rnd.maximize, direction, rnd.objectives).order
    mine = int(order[0]) if int(order[0]) != gate else int(order[1])
    return idx[gate], idx[mine]


def prompt_markdown(rnd: Round) -> str:
    """The prompt both answers reply to, shown above them (escaped Markdown)."""
    return f"**Prompt:** {render.safe_markdown(prompt_text(rnd.prompt))}"


def side_markdown(rnd: Round, index: int, side: str) -> str:
    """One side's heading, the reward model's score and full text (escaped Markdown)."""
    cand = rnd.candidates[positions(rnd)[index]]
    return (f"### {side} · candidate #{cand.index}\n\n*reward model's score {cand.score:.4g} · {cand.n_tokens} tokens*"
            f"\n\n---\n\n{render.safe_markdown(cand.text) or '*(empty response)*'}\n")


def _arcs(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Join a piece ending at 360° with one starting at 0° (the same arc through 0°)."""
    arcs = list(intervals)
    if len(arcs) > 1 and arcs[0][0] == 0.0 and arcs[-1][1] == 360.0:
        arcs = [(arcs[-1][0], arcs[0][1] + 360.0)] + arcs[1:-1]
    return arcs


def wins_markdown(rnd: Round, a: int, b: int, x: str, y: str, direction: Direction | None) -> str:
    """At which arrow angles A and B each rank first, with the page's own settings: the ring's sectors
    (`ranking.winning_sectors`: the plotted pair turned, pinned weights kept, the direction's method)."""
    names = list(rnd.objectives)
    if x not in names or y not in names or x == y:
        return "*Put two different objectives on the plot's axes to see where each one ranks first.*"
    ix, iy = names.index(x), names.index(y)
    weights = plotting.full_weights(rnd, direction) if direction is not None else np.eye(len(names))[[ix, iy]].sum(0)
    method = direction.method if direction is not None else "linear"
    sectors = ranking.winning_sectors(plotting.normalised(rnd)[:, :len(names)], weights, ix, iy, method)
    pos = positions(rnd)
    lines = [f"**Arrow angles at which each one ranks first** (as the ring shows them: 0° = only more "
             f"{render.escape_html(x)}, 90° = only more {render.escape_html(y)}; ranked "
             f"{'along the arrow' if method == 'linear' else 'by Tchebycheff'}):"]
    for side, index in (("A", a), ("B", b)):
        # a sliver of floating-point width is a tie at one angle (a point on a hull edge), not a win
        arcs = [(lo, hi) for lo, hi in _arcs([(lo, hi) for p, lo, hi in sectors if p == pos[index]]) if hi - lo > 1e-6]
        if not arcs:
            lines.append(f"- **{side}** (#{index}) ranks first at no angle with these settings.")
            continue
        span = sum(hi - lo for lo, hi in arcs)
        text = ", ".join(f"{lo:.0f}°–{hi - 360 if hi > 360 else hi:.0f}°" for lo, hi in arcs)
        lines.append(f"- **{side}** (#{index}) ranks first for {text} ({span:.0f}° of 360°).")
    return "\n".join(lines)


def next_pair(rnd: Round, direction: Direction | None, done: set[frozenset[int]]) -> tuple[int, int]:
    """(A, B) candidate indices: the pair the direction is least sure about, skipping pairs already voted."""
    names = list(rnd.objectives)
    weights = plotting.full_weights(rnd, direction) if direction is not None else np.ones(len(names))
    method = direction.method if direction is not None else "linear"
    pos = positions(rnd)
    done_pos = {frozenset(pos[i] for i in pair if i in pos) for pair in done}
    a, b = ranking.least_sure_pair(plotting.normalised(rnd)[:, :len(names)], weights, method, done_pos)
    return rnd.candidates[a].index, rnd.candidates[b].index


def learned_overlay(rnd: Round, direction: Direction, covariance: np.ndarray, raw: np.ndarray,
                    x: str, y: str) -> dict | None:
    """The learned direction projected on the plotted pair: angle and ±1 std (degrees) for the widget.

    raw (k,) and covariance (k, k) are the fit's coefficients over direction.objectives. The angle of the
    projection and its std come from `ranking.projected_angle` (the delta method). None when the pair is not two
    of the direction's objectives or the direction is (nearly) perpendicular to the plotted plane.
    """
    names = list(direction.objectives)
    if x not in names or y not in names or x == y or not set(names) <= set(rnd.objectives):
        return None
    seen = ranking.projected_angle(raw, covariance, names.index(x), names.index(y))
    if seen is None:
        return None
    angle, std, share = seen
    return {"angle": angle, "std": min(std, MAX_ANGLE_STD), "share": share}  # share: how much lies in this plane


def fit_scope(explorer, session_id: str, rnd: Round, x: str | None, y: str | None) -> tuple[int, list[str] | None]:
    """(decisive votes, the objectives they can support: all of the round's, the plotted pair, or None)."""
    m = sum(v.outcome in ("a", "b") for v in explorer.list_votes(session_id))
    names = list(rnd.objectives)
    pair = (names.index(x), names.index(y)) if x in names and y in names else None
    cols = ranking.columns_to_fit(m, len(names), pair)
    return m, None if cols is None else [names[j] for j in cols]


def learned_for(explorer, session_id: str, rnd: Round | None = None, x: str | None = None, y: str | None = None):
    """The session's LearnedDirection over what its votes support, or None (not enough votes, or they cancel out).

    With a round and its plotted pair (x, y): all objectives once there are more votes than objectives, the
    plotted pair once there are more than two, else None. Without a round: every objective.
    """
    objectives = None
    if rnd is not None:
        _, objectives = fit_scope(explorer, session_id, rnd, x, y)
        if objectives is None:
            return None
    try:
        return explorer.learned_direction(session_id, objectives=tuple(objectives) if objectives else None)
    except ValueError:  # fit_direction: the votes cancel out exactly; the page says so instead of failing
        return None


def overlay_for(explorer, rnd: Round, x: str, y: str) -> dict | None:
    """The widget's learned-direction overlay for a round's plotted pair, if the session has learned one."""
    if not rnd.candidates:
        return None
    learned = learned_for(explorer, rnd.session_id, rnd, x, y)
    if learned is None:
        return None
    return learned_overlay(rnd, learned.direction, learned.fit.covariance, learned.fit.raw, x, y)


def _of(fraction: float, n: int) -> str:
    """'3' or '2.5' votes: agreement counts an exact tie as half a vote."""
    return f"{round(fraction * n * 2) / 2:g}"


def learned_markdown(learned, n_decisive: int, k: int) -> str:
    """The learned direction in words, with how many held-out votes it predicts (learned: LearnedDirection)."""
    if learned is None:
        if n_decisive > 2:
            return ("**Your direction:** these votes contradict each other and point nowhere yet; "
                    "vote on more pairs.")
        return (f"**Your direction: not enough votes yet.** {n_decisive} decisive vote(s) so far (A or B is better). "
                f"Learning the plotted pair's 2 weights needs 3; all {k} objectives need {k + 1}.")
    n = learned.n_votes
    names = learned.direction.objectives
    weights = ", ".join(f"{render.escape_html(name)} {w:+.2f}"
                        for name, w in zip(names, learned.direction.unit()) if abs(w) > 5e-3)
    scope = ("the plotted pair only, until there are more votes than objectives" if len(names) == 2 and k > 2
             else f"all {len(names)} objectives")
    return (f"**Your direction** (Bradley–Terry fit to {n} decisive votes, over {scope}): {weights}.\n\n"
            f"Each vote predicted from the others: **{learned.held_out:g} of {n}** held-out votes right "
            f"(the reward model's score agrees with {_of(learned.gate_agreement, n)} of {n}). "
            "On the plot: the short dashed blue arrow, shaded ±1 standard deviation of its angle.")
