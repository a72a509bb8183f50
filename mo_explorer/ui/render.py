"""Text the UI shows, built from schema types without gradio: escaped Markdown, summaries, labels.

Model output is untrusted. Before it reaches a Markdown renderer every `&`, `<` and `>` outside code is
replaced by an entity, so raw HTML in a response is shown as text and never becomes elements. Code spans
and fenced blocks are left alone because the renderer already prints their content literally (escaping
there would show `&lt;` instead of `<` in code).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mo_explorer import pareto, plotting
from mo_explorer.schema import Direction, Round, prompt_text

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
EXAMPLES_FILE = Path(__file__).resolve().parents[2] / "data" / "example_prompts.json"


def escape_html(text: str) -> str:
    """`&`, `<`, `>` as entities: the text can no longer open or close an HTML element."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_inline(text: str) -> str:
    """Escape prose, keeping `code spans` (a run of n backticks closed by a run of exactly n) verbatim."""
    out, i = [], 0
    for run in re.finditer(r"`+", text):
        if run.start() < i:
            continue
        close = re.compile(r"(?<!`)" + "`" * len(run.group()) + r"(?!`)").search(text, run.end())
        if close is None:
            continue  # an unmatched run is plain text; it is escaped with the prose around it
        out.append(escape_html(text[i:run.start()]))
        out.append(text[run.start():close.end()])
        i = close.end()
    out.append(escape_html(text[i:]))
    return "".join(out)


def safe_markdown(text: str) -> str:
    """Markdown of untrusted text with raw HTML escaped outside code spans and fenced code blocks."""
    out, prose, fence = [], [], None
    for line in text.splitlines(keepends=True):
        opening = FENCE.match(line)
        if fence is None and opening:
            out.append(_escape_inline("".join(prose)))
            prose, fence = [], opening.group(1)
            out.append(line)
        elif fence is not None:
            out.append(line)
            closing = FENCE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence) \
                    and not line.strip().lstrip(fence[0]):
                fence = None
        else:
            prose.append(line)
    out.append(_escape_inline("".join(prose)))
    return "".join(out)


def response_markdown(rnd: Round, index: int) -> str:
    """The full response of one candidate with its rewards, as safe Markdown."""
    cand = next((c for c in rnd.candidates if c.index == index), None)
    if cand is None:
        return f"Candidate #{index} is not in this round."
    rows = "\n".join(f"| {escape_html(name)} | {value:.4g} |" for name, value in zip(rnd.objectives, cand.rewards))
    return (f"### Candidate #{cand.index}\n\n"
            f"**Prompt:** {_escape_inline(prompt_text(rnd.prompt))}\n\n"
            f"---\n\n{safe_markdown(cand.text) or '*(empty response)*'}\n\n---\n\n"
            f"| objective | value |\n|---|---|\n| reward model's score | {cand.score:.4g} |\n{rows}\n")


def round_label(rnd: Round, volume: float | None = None) -> str:
    """How a round is listed: time, candidate count, its front's hypervolume and the start of its prompt."""
    text = " ".join(prompt_text(rnd.prompt).split())
    text = text[:48] + ("…" if len(text) > 48 else "")
    status = "" if rnd.status == "complete" else f" [{rnd.status}]"
    hv = f" · front {volume:.3f}" if volume is not None else ""
    steered = f" · ↗ written along {direction_label(rnd.params.steer)}" if rnd.params.steer is not None else ""
    return f"{rnd.created_at[11:19]} · {len(rnd.candidates)} ×{hv} · {text}{steered}{status}"


def written_from(rnd: Round, rounds: list[Round]) -> Round | None:
    """The round a steered round was written from: the session's round just before it (None for a plain one)."""
    ids = [r.round_id for r in rounds]
    if rnd.params.steer is None or rnd.round_id not in ids or ids.index(rnd.round_id) == 0:
        return None
    return rounds[ids.index(rnd.round_id) - 1]


def steered_summary(rnd: Round, previous: Round | None, volumes: dict[str, float]) -> str:
    """What a steered round did to the front: its hypervolume against the round it was written from."""
    before, after = volumes.get(previous.round_id) if previous else None, volumes.get(rnd.round_id)
    said = f"Written along the arrow ({direction_label(rnd.params.steer)})."
    if before is None or after is None:
        return said
    return f"{said} Front hypervolume {before:.3f} → {after:.3f} (before → after, on the session's scale)."


def front_volumes(rounds: list[Round]) -> dict[str, float]:
    """Round id -> hypervolume of its front over the reward model's objectives, on the session's scale.

    Rounds are compared only with rounds scored on the same objectives; measured columns (length, time)
    are left out, since they depend on the parameters more than on the answers' quality.
    """
    groups: dict[tuple[str, ...], list[Round]] = {}
    for rnd in rounds:
        if rnd.candidates:
            groups.setdefault(rnd.objectives, []).append(rnd)
    out = {}
    for group in groups.values():
        cols = [j for j, measured in enumerate(group[0].measured) if not measured]
        if not cols:
            continue
        maximize = [group[0].maximize[j] for j in cols]
        volumes = pareto.session_hypervolumes([r.reward_matrix()[:, cols] for r in group], maximize)
        out.update({r.round_id: v for r, v in zip(group, volumes)})
    return out


def front_summary(rnd: Round, volumes: dict[str, float]) -> dict | None:
    """The widget's line about this round's front: its hypervolume and the session's best, or None."""
    if rnd.round_id not in volumes:
        return None
    best = max(volumes.values())
    return {"hypervolume": volumes[rnd.round_id], "best": best, "rounds": len(volumes)}


def direction_label(direction: Direction) -> str:
    """A short description of a stored direction."""
    parts = ", ".join(f"{name} {w:+.2f}" for name, w in zip(direction.objectives, direction.unit()) if abs(w) > 5e-3)
    return f"{direction.method}: {parts}"


def load_examples(path: Path = EXAMPLES_FILE) -> list[str]:
    """Example prompts from data/example_prompts.json (a list of {"kind", "prompt"})."""
    with open(path, encoding="utf-8") as f:
        return [str(item["prompt"]) for item in json.load(f)]


def default_axes(rnd: Round, x: str | None = None, y: str | None = None) -> tuple[str, str]:
    """The plot axes to show: the requested ones when the round has them, else its first two model objectives."""
    columns = plotting.plot_columns(rnd)
    if x in columns and y in columns and x != y:
        return x, y
    k_model = len(rnd.gating)
    if k_model >= 2:
        return rnd.objectives[0], rnd.objectives[1]
    return columns[0], columns[1] if len(columns) > 1 else columns[0]
