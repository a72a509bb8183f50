"""The app's API through gradio_client against a launched server: generate, then rerank (stored)."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from mo_explorer import ranking
from tests.ui_support import served_tiny


@pytest.fixture(scope="module")
def app(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    with served_tiny(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory.mktemp("api")) as (explorer, url):
        yield explorer, Client(url, verbose=False)


def test_generate_then_rerank(app):
    explorer, client = app
    summary = client.predict(prompt="Name a colour", n=3, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=5,
                             session_id="", api_name="/generate")
    assert summary["status"] == "complete" and len(summary["candidates"]) == 3
    assert summary["objectives"][:3] == ["helpful", "safe", "concise"]
    rnd = explorer.get_round(summary["round_id"], summary["session_id"])
    assert [c.text for c in rnd.candidates] == [c["text"] for c in summary["candidates"]]

    out = client.predict(round_id=summary["round_id"], weights=[0.0, -1.0], method="linear",
                         session_id=summary["session_id"], api_name="/rerank")
    stored = explorer.get_round(summary["round_id"], summary["session_id"]).direction
    assert stored.objectives == ("helpful", "safe") and stored.weights == (0.0, -1.0)
    expected = ranking.rank(rnd.reward_matrix(), rnd.maximize, stored, rnd.objectives)
    assert out["ranking"]["order"] == [rnd.candidates[int(i)].index for i in expected.order]
    assert out["direction"]["weights"] == [0.0, -1.0]

    by_angle = client.predict(round_id=summary["round_id"], angle=90.0, method="tchebycheff",
                              session_id=summary["session_id"], api_name="/rerank")
    np.testing.assert_allclose(by_angle["direction"]["weights"], [0.0, 1.0], atol=1e-12)
    assert by_angle["direction"]["method"] == "tchebycheff"


def test_generate_with_a_steer_field_writes_a_steered_round(app):
    explorer, client = app
    steer = {"objectives": ["safe"], "weights": [1.0], "method": "linear"}
    summary = client.predict(prompt="Name a colour", n=3, temperature=1.0, top_p=1.0, max_new_tokens=4, seed=5,
                             session_id="", steer=steer, api_name="/generate")
    assert summary["mode"] == "steered" and summary["params"]["steer"] == steer
    assert explorer.get_round(summary["round_id"], summary["session_id"]).params.steer.objectives == ("safe",)
    with pytest.raises(Exception, match="not all zero"):
        client.predict(prompt="hi", steer={"objectives": ["safe"], "weights": [0.0]}, api_name="/generate")


def test_api_errors_are_clear(app):
    explorer, client = app
    with pytest.raises(Exception, match="empty"):
        client.predict(prompt="  ", api_name="/generate")
    with pytest.raises(Exception, match="session_id: must be an id"):
        client.predict(round_id="nope", weights=[1.0], api_name="/rerank")  # no session: no round to name
    rnd = explorer.run_round("Hi", session_id=None)
    with pytest.raises(Exception, match="unknown round"):
        client.predict(round_id="nope", weights=[1.0], session_id=rnd.session_id, api_name="/rerank")
    with pytest.raises(Exception, match="weights"):
        client.predict(round_id=rnd.round_id, session_id=rnd.session_id, api_name="/rerank")


def test_scripts_are_served_locally_and_nothing_else_is(app):
    import httpx

    from mo_explorer.ui import assets

    url = app[1].src
    head = assets.widget_head()
    assert "http" not in head and "plotly.min.js" in head  # no CDN: everything comes from this server
    for path in assets.served_files():
        r = httpx.get(url.rstrip("/") + "/" + assets.file_url(path))
        assert r.status_code == 200 and len(r.content) == path.stat().st_size
    r = httpx.get(url.rstrip("/") + "/" + assets.file_url(assets.plotly_js().with_name("widgetbundle.js")))
    assert r.status_code == 403  # a neighbour of a served file stays private


HOSTILE = [None, True, "abc", 2.5, -1, 10**30, "<b>x</b>", [1], {"a": 1}, "", 1e308]


def test_hostile_values_over_http_get_clear_messages(app):
    """Through Gradio's own conversions too (sliders, radios, typed API arguments): a message, never a crash."""
    explorer, client = app
    rnd = explorer.run_round("Hi", session_id=None)
    sid, rid = rnd.session_id, rnd.round_id
    calls = []
    for v in HOSTILE:
        calls += [("/vote", (sid, rid, v, 1, "a")), ("/vote", (sid, rid, 0, 1, v)), ("/vote", (v, rid, 0, 1, "a")),
                  ("/export", (sid, v)), ("/export", (v, "json")),
                  ("/rerank", {"round_id": rid, "session_id": sid, "weights": v}),
                  ("/rerank", {"round_id": rid, "session_id": sid, "angle": v}),
                  ("/rerank", {"round_id": v, "session_id": sid, "weights": [1.0]}),
                  ("/generate", {"prompt": "hi", "n": v}), ("/generate", {"prompt": v}),
                  ("/generate_stream", ("hi", v, 1.0, 1.0, 2, 0, "", None, None)),
                  ("/generate_stream", ("hi", 2, 1.0, 1.0, 2, v, "", None, None)),
                  ("/generate_stream", ("hi", 2, 1.0, 1.0, 2, 0, "", v, None))]
    messages = []
    for name, args in calls:
        try:
            client.predict(*args, api_name=name) if isinstance(args, tuple) else client.predict(**args, api_name=name)
        except AppError as exc:
            messages.append(str(exc))
    print(f"{len(calls)} hostile calls over HTTP, {len(messages)} refused with a message")
    assert len(calls) == 143 and len(messages) >= 120  # a few values are fine (seed None is 0, "" a new session)
    assert all(m.strip() and m.strip().lower() != "error" and "Traceback" not in m for m in messages)
    stored = explorer.get_round(rid, sid)  # the round still opens, with its candidates and sane votes
    assert len(stored.candidates) == len(rnd.candidates)
    assert all(v.a_index != v.b_index and v.outcome in ("a", "b", "tie", "both_bad")
               for v in explorer.store.list_votes(sid))
