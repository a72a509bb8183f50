"""The app's API through gradio_client against a launched server: generate, then rerank (stored)."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client

from mo_explorer import ranking
from tests.ui_support import served, tiny_explorer, tiny_settings


@pytest.fixture(scope="module")
def app(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    settings = tiny_settings()
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp / "db.sqlite", tmp / "cache", settings)
    with served(explorer, settings) as url:
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
