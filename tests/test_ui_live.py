"""The page's handlers while a round is written, on tiny real models: the rows' text in the widget before the round
is done, a steered round's points moving over the round it is written from, and the line beside the plot."""

from __future__ import annotations

import gradio as gr
import pytest
import torch

from mo_explorer import ranking
from mo_explorer.models import generator as generator_module
from mo_explorer.ui import handlers as handlers_module
from mo_explorer.ui.app import build_demo
from tests.ui_support import tiny_explorer, tiny_settings

# rankings every 2 tokens of 8, one survivor: a steered round of 4 rows drops 3 of them at each of 3 blocks
STEERING = {"MO_EXPLORER_STEER_BLOCK": "2", "MO_EXPLORER_STEER_SURVIVORS": "1"}


@pytest.fixture(scope="module")
def page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    from types import SimpleNamespace

    tmp = tmp_path_factory.mktemp("ui-live")
    settings = tiny_settings(**STEERING)
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp / "db.sqlite", tmp / "cache", settings)
    demo = build_demo(explorer, settings)
    return SimpleNamespace(explorer=explorer, h=demo.mo_handlers, c=demo.mo_components)


@pytest.fixture(autouse=True)
def every_step(page, monkeypatch):
    """Every hand-up shown (a tiny round is over in less than one throttle period), rows running to the end."""
    monkeypatch.setattr(generator_module, "PARTIAL_EVERY_S", 0.0)
    monkeypatch.setattr(handlers_module, "LIVE_EVERY_S", 0.0)
    rare = page.explorer.generator.tokenizer("zqxj", add_special_tokens=False)["input_ids"][-1]
    monkeypatch.setattr(page.explorer.generator, "eos_ids", torch.tensor([rare], dtype=torch.long))


def generate(page, session_id: str = ""):
    return list(page.h.generate("Write a haiku", 4, 1.0, 1.0, 8, 7, session_id, None, None))


def live_parts(page, updates) -> list[dict]:
    return [u[page.c.widget]["live"] for u in updates if "live" in (u.get(page.c.widget) or {})]


def test_the_rows_text_is_on_the_page_and_grows_before_the_round_is_done(page):
    updates = generate(page)
    live = live_parts(page, updates)
    written = [max(row["tokens"] for row in part["rows"]) for part in live if part["rows"]]
    assert len(set(written)) >= 3 and written == sorted(written)  # the rows grow, update after update
    assert all(any(row["text"].strip() for row in part["rows"]) for part in live if part["rows"])  # words
    assert all(part["points"] == [] for part in live)  # a plain round's partial answers are never scored
    final = updates[-1][page.c.widget]
    assert "live" not in final and len(final["values"]) == 4  # done: the round itself, nothing half-written


def test_a_steered_rounds_points_move_over_the_round_it_was_written_from(page):
    c = page.c
    first = generate(page)[-1]
    rnd_id, session_id = first[c.round_id], first[c.widget]["session_id"]
    updates = list(page.h.write_along(rnd_id, session_id, 4, 1.0, 1.0, 8, 7, None, None))
    before_done = updates[:-1]
    # the plot keeps the round it was written from until the new one is complete
    assert not any("columns" in (u.get(c.widget) or {}) for u in before_done)
    live = live_parts(page, before_done)
    assert live and all(part["base"] == rnd_id for part in live)
    positions = [{p["row"]: p["values"] for p in part["points"]} for part in live if part["points"]]
    assert all(len(v) == len(first[c.widget]["columns"]) for pos in positions for v in pos.values())
    assert positions and positions[0].keys() == {0, 1, 2, 3}
    assert any(a != b for a, b in zip(positions, positions[1:]))  # they move from block to block
    dropped = [d for part in live for d in part["dropped"]]
    assert len(dropped) == 3 * 3 and all(d["to"] in range(4) and d["row"] != d["to"] for d in dropped)
    assert len({part["seq"] for part in live}) == len(live)  # each hand-over numbered: a fade is shown once
    assert "live" not in updates[-1][c.widget] and updates[-1][c.widget]["mode"] == "steered"


def test_after_writing_along_the_arrow_the_line_beside_the_plot_names_the_new_rounds_first(page):
    c = page.c
    first = generate(page)[-1]
    rnd_id, session_id = first[c.round_id], first[c.widget]["session_id"]
    saved = page.h.store_direction(gr.EventData(None, {"round_id": rnd_id, "objectives": ["helpful", "safe"],
                                                       "weights": [0.0, 1.0]}), session_id)
    assert "Direction saved" in saved[c.direction_status]
    final = list(page.h.write_along(rnd_id, session_id, 4, 1.0, 1.0, 8, 7, None, None))[-1]
    steered = page.explorer.get_round(final[c.round_id], session_id)
    best = ranking.rank(steered.reward_matrix(), steered.maximize, steered.direction, steered.objectives).best
    assert final[c.direction_status].endswith(f"first: #{steered.candidates[best].index}.")
    assert "safe +1.00" in final[c.direction_status]
