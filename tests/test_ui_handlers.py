"""The page's handlers on tiny real models: streaming, storing the dragged direction, sessions, errors."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from mo_explorer import ranking
from mo_explorer.errors import ModelError, NotFoundError
from mo_explorer.ui.handlers import direction_from_event
from tests.ui_support import tiny_page


@pytest.fixture(scope="module")
def page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    return tiny_page(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory.mktemp("ui"))


def event(**data):
    return gr.EventData(None, data)


def generate(page, prompt="Write a haiku", n=5, session_id=""):
    return list(page.h.generate(prompt, n, 1.0, 1.0, 4, 7, session_id, None, None))


def test_generate_streams_progress_then_candidates(page):
    c = page.c
    session_id = page.explorer.new_session()
    updates = generate(page, session_id=session_id)
    assert any("Generating" in u.get(c.status, "") for u in updates)
    # while generating, the plot itself says how far it got
    assert any("token" in (u.get(c.widget) or {}).get("live", {}).get("message", "") for u in updates)
    payloads = [u[c.widget] for u in updates if c.widget in u and "columns" in u[c.widget]]
    sizes = [len(p["values"]) for p in payloads]
    assert sizes == sorted(sizes) and sizes[-1] == 5  # candidates appear as they are scored, none lost
    final = updates[-1]
    assert "Done: 5 candidates" in final[c.status]
    rnd = page.explorer.get_round(final[c.round_id], session_id)
    assert len(rnd.candidates) == 5 and rnd.session_id == session_id
    assert final[c.rounds].value == rnd.round_id
    assert final[c.x_axis].value == "helpful" and ("reward model's score", "score") in final[c.x_axis].choices
    # the widget starts from the gate's direction kept to the plotted pair: nothing off the plot weighs
    gate = page.explorer.default_direction(rnd)
    assert payloads[-1]["weights"] == pytest.approx([*gate.weights[:2], 0.0, 0.0, 0.0])


def test_released_arrow_is_stored_and_ranks_like_the_core(page):
    c = page.c
    updates = generate(page)
    rnd_id, session_id = updates[-1][c.round_id], updates[-1][c.widget]["session_id"]
    objectives = updates[-1][c.widget]["columns"][:5]
    weights = [-0.6, 0.8, 0.0, 0.0, 0.0]
    out = page.h.store_direction(event(round_id=rnd_id, objectives=objectives, weights=weights,
                                       method="tchebycheff", angle=126.87), session_id)
    rnd = page.explorer.get_round(rnd_id, session_id)
    assert rnd.direction.objectives == ("helpful", "safe") and rnd.direction.method == "tchebycheff"
    np.testing.assert_allclose(rnd.direction.weights, [-0.6, 0.8])
    best = ranking.rank(rnd.reward_matrix(), rnd.maximize, rnd.direction, rnd.objectives).best
    assert f"first: #{rnd.candidates[best].index}" in out[c.direction_status]  # said beside the plot
    assert out[c.parallel] is not None
    # the next round of the session starts from the user's direction, not the gate's
    nxt = generate(page, session_id=session_id)[-1]
    assert page.explorer.get_round(nxt[c.round_id], session_id).direction == rnd.direction
    assert nxt[c.widget]["method"] == "tchebycheff"


def test_bad_direction_events_are_user_errors(page):
    with pytest.raises(gr.Error, match="malformed direction"):
        page.h.store_direction(event(round_id="x", objectives=["a"], weights=["nan?"]), "")
    assert direction_from_event({"objectives": ["a", "b"], "weights": [0.0, 2.0]}).objectives == ("b",)


def test_select_shows_escaped_full_response_and_keeps_last_two(page):
    c = page.c
    final = generate(page)[-1]
    rnd_id, session_id = final[c.round_id], final[c.widget]["session_id"]
    out = page.h.select(event(round_id=rnd_id, index=3), session_id, [0, 1])
    assert out[c.response].startswith("### Candidate #3") and out[c.selected] == [1, 3]
    with pytest.raises(gr.Error, match="not found|does not belong|unknown"):
        page.h.select(event(round_id=rnd_id, index=0), page.explorer.new_session(), [])


def test_reload_resumes_the_session_in_the_url(page):
    c = page.c
    final = generate(page)[-1]
    session_id = final[c.widget]["session_id"]
    out = page.h.load_page(SimpleNamespace(query_params={"session": session_id}))
    assert out[c.session] == session_id and out[c.round_id] == final[c.round_id]
    assert "Resumed" in out[c.status]
    fresh = page.h.load_page(SimpleNamespace(query_params={"session": "no-such-session"}))
    assert fresh[c.session] != session_id and "not found" in fresh[c.status] and fresh[c.widget] is None
    assert page.h.load_page(SimpleNamespace(query_params={}))[c.session]


def test_axes_and_round_switching(page):
    c = page.c
    final = generate(page)[-1]
    session_id, first = final[c.widget]["session_id"], final[c.round_id]
    out = page.h.change_axes("score", "gen_seconds", first, session_id)
    assert (out[c.widget]["x"], out[c.widget]["y"]) == (5, 4)
    second = generate(page, session_id=session_id)[-1]
    assert [v for _, v in second[c.rounds].choices] == [first, second[c.round_id]]
    back = page.h.switch_round(first, session_id, "helpful", "safe")
    assert back[c.round_id] == first and back[c.widget]["round_id"] == first
    assert page.h.new_session()[c.session] not in (session_id, "")


def test_errors_show_in_the_page_and_keep_what_was_stored(page, monkeypatch):
    c = page.c
    with pytest.raises(gr.Error, match="empty"):
        generate(page, prompt="   ")
    session_id = page.explorer.new_session()
    real = page.explorer.stream_round

    shown = []

    def failing(*args, **kwargs):
        for ev in real(*args, **kwargs):
            yield ev
            if ev.kind == "scored":
                shown.append(len(ev.round.candidates))
                raise ModelError("the reward model ran out of memory")

    monkeypatch.setattr(page.explorer, "stream_round", failing)
    seen = []
    with pytest.raises(gr.Error, match="out of memory"):
        for update in page.h.generate("Hello", 6, 1.0, 1.0, 4, 1, session_id, None, None):
            seen.append(update)
    assert "out of memory" in seen[-1][c.status]
    rounds = page.explorer.session_rounds(session_id)
    assert len(rounds) == 1 and len(rounds[0].candidates) == shown[0]  # what was shown stays stored


def test_a_share_link_opens_a_copy_and_never_the_shared_session(page):
    """I share my session; a visitor opening the link gets the same rounds in a session of their own, and what
    they do there never reaches mine. The link is not my session id, and a made-up link opens nothing."""
    c = page.c
    final = generate(page)[-1]
    mine = final[c.widget]["session_id"]
    said = page.h.share(mine)[c.share_link]
    token = said.split("?share=")[1].split("`")[0]
    assert token != mine and mine not in said
    assert page.h.share(mine)[c.share_link] == said  # one link per session
    visit = page.h.load_page(SimpleNamespace(query_params={"share": token}))
    copy = visit[c.session]
    assert copy != mine and "copy" in visit[c.status]
    theirs, ours = page.explorer.session_rounds(copy), page.explorer.session_rounds(mine)
    assert [r.prompt for r in theirs] == [r.prompt for r in ours]
    assert [[x.text for x in r.candidates] for r in theirs] == [[x.text for x in r.candidates] for r in ours]
    page.explorer.vote(copy, theirs[0].round_id, 0, 1, "a")  # the visitor votes in the copy
    assert page.explorer.store.list_votes(mine) == [] and len(page.explorer.store.list_votes(copy)) == 1
    with pytest.raises(NotFoundError):
        page.explorer.get_round(ours[0].round_id, token)  # the token is no session key
    bad = page.h.load_page(SimpleNamespace(query_params={"share": "x" * 22}))
    assert bad[c.session] not in (mine, copy) and "unknown" in bad[c.status]
    page.explorer.store.delete_session(mine)  # withdrawn with the session
    gone = page.h.load_page(SimpleNamespace(query_params={"share": token}))
    assert "unknown" in gone[c.status]


def test_writing_along_the_arrow_steers_a_round_drawn_over_the_faded_previous_one(page):
    """I generate, drag the arrow, press Write along the arrow: a steered round of the same prompt, on one scale
    with the faded round it came from, its hypervolume against that round's said, and the list marks it."""
    c = page.c
    first = generate(page, prompt="Name a fruit", n=4)[-1]
    rnd_id, session_id = first[c.round_id], first[c.widget]["session_id"]
    page.h.store_direction(event(round_id=rnd_id, objectives=["helpful", "safe"], weights=[0.0, 1.0]), session_id)
    updates = list(page.h.write_along(rnd_id, session_id, 4, 1.0, 1.0, 4, 7, None, None))
    assert any("Writing along the arrow" in u.get(c.status, "") for u in updates)
    final = updates[-1]
    steered = page.explorer.get_round(final[c.round_id], session_id)
    before = page.explorer.get_round(rnd_id, session_id)
    assert steered.round_id != rnd_id and steered.prompt == before.prompt
    assert steered.params.steer.objectives == ("safe",)  # the arrow as released (a zero weight is left out)
    assert "Front hypervolume" in final[c.status] and "→" in final[c.status]
    payload = final[c.widget]
    assert payload["mode"] == "steered" and len(payload["previous"]) == 4  # the old round's points, faded
    faded = payload["figure"]["data"][-1]
    assert faded["name"].startswith("the round it was written from") and len(faded["x"]) == 4
    # one scale: the old points sit where the new round's normalisation puts them (beyond [0, 1] if further)
    safe = [c_.rewards[1] for c_ in steered.candidates]
    lo, hi = min(safe), max(safe)
    if hi > lo:
        expected = [(c_.rewards[1] - lo) / (hi - lo) for c_ in before.candidates]
        assert [p[1] for p in payload["previous"]] == pytest.approx(expected)
    label = [label for label, value in final[c.rounds].choices if value == steered.round_id][0]
    assert "written along" in label
    plain_label = [label for label, value in final[c.rounds].choices if value == rnd_id][0]
    assert "written along" not in plain_label
