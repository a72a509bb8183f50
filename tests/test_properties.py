"""Property-based tests (hypothesis): every endpoint, page event and the import parser, fed values from anywhere.

Each call either succeeds or is refused with a clear message (gr.Error / UserError, escaped, no traceback);
nothing else may escape. After each test the whole database is checked: every stored session opens, holds only
finite numbers, whole counts and valid text, has no round left running, and survives an export/import round
trip. Each test counts the inputs it ran (the terminal summary adds them up) and checks it ran its budget.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mo_explorer import validation
from mo_explorer.errors import UserError
from mo_explorer.schema import GenerationParams
from mo_explorer.ui.api import Api
from mo_explorer.ui.app import build_demo
from tests.ui_support import tiny_explorer, tiny_settings

NOWHERE = "AAAAAAAAAAAAAAAAAAAAAA"
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
HTML = st.sampled_from(["<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "=1+1", "-1", "@x"])
ANY = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2**80, 2**80), st.floats(), st.text(max_size=12),
    SURROGATES, HTML, st.sampled_from([float("nan"), float("inf"), -float("inf"), 2.5, 1e308, -0.0, 10**30]),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def maybe(good: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a sensible value (so the core is reached: several per call must be), otherwise anything at all."""
    # (st.one_of(good, good, ..., ANY) would not do: it drops repeated branches.)
    return st.sampled_from([True] * 7 + [False]).flatmap(lambda sensible: good if sensible else ANY)


def budget(n: int):
    return settings(max_examples=n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def app(tiny_lm_dir, tiny_classifier_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("properties")
    conf = tiny_settings(MO_EXPLORER_MAX_NEW_TOKENS_LIMIT="4", MO_EXPLORER_MAX_CANDIDATES="4")
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp / "db.sqlite", tmp / "cache", conf)
    demo = build_demo(explorer, conf)
    owner = explorer.run_round("Whose round is this?", GenerationParams(n=4, max_new_tokens=3, seed=1))
    intruder = explorer.new_session()
    return SimpleNamespace(explorer=explorer, h=demo.mo_handlers, ch=demo.mo_compare_handlers, c=demo.mo_components,
                           api=Api(explorer), owner=owner, intruder=intruder)


class Runner:
    """Calls one input: success, or a clear refusal; anything else fails the test. Counts every input."""

    def __init__(self, counter, name: str):
        self.counter, self.name, self.count, self.accepted = counter, name, 0, 0

    def __call__(self, call):
        self.count += 1
        self.counter[self.name] += 1
        try:
            result = call()
        except (gr.Error, UserError) as exc:
            message = str(getattr(exc, "message", exc))
            assert message and len(message) < 2000 and "Traceback" not in message
            if isinstance(exc, gr.Error):
                assert "<" not in message and ">" not in message  # shown as HTML: escaped
            return None
        self.accepted += 1
        self.counter[(self.name, "accepted")] += 1
        return result


@pytest.fixture
def run(app, generated_inputs, request):
    runner = Runner(generated_inputs, request.node.name)
    yield runner
    assert_store_sane(app.explorer)


def named_weights(objectives: list[str]) -> st.SearchStrategy:
    """(objectives, weights) of one length: mostly the round's own names, now and then one it lacks."""
    names = st.sampled_from([*objectives] * 3 + ["nope"])
    return st.integers(1, len(objectives)).flatmap(
        lambda k: st.tuples(st.lists(names, min_size=k, max_size=k, unique=True),
                            st.lists(st.floats(-2, 2), min_size=k, max_size=k)))


def sessions(app):
    return st.sampled_from([app.owner.session_id] * 6 + [app.intruder, "", NOWHERE])


def rounds(app):
    return st.sampled_from([app.owner.round_id] * 6 + [NOWHERE, ""])


def assert_store_sane(explorer) -> None:
    """Nothing nonsensical stored: every session opens, its values are well-formed, it survives export/import."""
    for summary in explorer.list_sessions(limit=10_000):
        sid = summary.session_id
        for rnd in explorer.session_rounds(sid):
            assert rnd.status in ("complete", "failed", "cancelled"), rnd.status
            validation.params(rnd.params)
            validation.messages(rnd.prompt)
            assert np.isfinite(rnd.reward_matrix()).all() and np.isfinite(rnd.gating).all()
            assert all(math.isfinite(c.score) and c.n_tokens >= 0 and c.gen_seconds >= 0 for c in rnd.candidates)
            if rnd.direction is not None:
                assert set(rnd.direction.objectives) <= set(rnd.objectives)
                assert all(math.isfinite(w) for w in rnd.direction.weights)
        for vote in explorer.store.list_votes(sid):
            indices = {c.index for c in explorer.get_round(vote.round_id, sid).candidates}
            assert {vote.a_index, vote.b_index} <= indices and vote.a_index != vote.b_index
        for fmt in ("trl", "csv"):
            explorer.export_session(sid, fmt)
    if explorer.list_sessions(limit=1):  # the newest session, written by the test that just ran
        newest = explorer.list_sessions(limit=1)[0].session_id
        copy = explorer.import_session(explorer.export_session(newest, "json"))
        explorer.store.delete_session(copy)


# ----- API endpoints ---------------------------------------------------------------------------------------
def test_api_generate(app, run):
    gen_sid = app.explorer.new_session()

    @budget(80)
    @given(prompt=maybe(st.text(min_size=1, max_size=30)), n=maybe(st.integers(1, 4)),
           temperature=maybe(st.floats(0, 2)), top_p=maybe(st.floats(0.05, 1)),
           max_new_tokens=maybe(st.integers(1, 2)), seed=maybe(st.integers(0, 2**32 - 1)),
           session_id=maybe(st.sampled_from([gen_sid] * 4 + [NOWHERE])))
    @example(prompt="0", n=1, temperature=0.0, top_p=1.0, max_new_tokens=1, seed=0, session_id=None)  # found once
    def prop(prompt, n, temperature, top_p, max_new_tokens, seed, session_id):
        out = run(lambda: app.api.generate(prompt, n, temperature, top_p, max_new_tokens, seed, session_id))
        if out is not None:
            # No session named (None or "", the endpoint's default): the round starts a new one.
            assert out["session_id"] == session_id if session_id else out["session_id"] not in (gen_sid, NOWHERE)
            assert out["prompt"] == [{"role": "user", "content": prompt}]
            assert out["params"]["n"] == n and type(out["params"]["n"]) is int and len(out["candidates"]) == n
            assert out["params"]["temperature"] == temperature and math.isfinite(out["params"]["temperature"])

    prop()
    assert run.count >= 80


def test_api_rerank(app, run):
    objectives = list(app.owner.objectives)

    @budget(200)
    @given(round_id=maybe(rounds(app)), session_id=maybe(sessions(app)), named=maybe(named_weights(objectives)),
           method=maybe(st.sampled_from(["linear", "tchebycheff"])), by_name=st.booleans(),
           angle=maybe(st.none() | st.floats(-720, 720)))
    def prop(round_id, session_id, named, method, by_name, angle):
        objectives, weights = named if isinstance(named, tuple) else (named, named)
        objectives = objectives if by_name else None
        out = run(lambda: app.api.rerank(round_id, weights, method, session_id, objectives, angle))
        if out is not None:
            assert (out["session_id"], out["round_id"]) == (app.owner.session_id, app.owner.round_id)
            assert session_id == app.owner.session_id  # only the owner's session reaches the round

    prop()
    assert run.count >= 200


# ----- page events -----------------------------------------------------------------------------------------
def test_page_generate_stream(app, run):
    gen_sid = app.explorer.new_session()

    @budget(50)
    @given(prompt=maybe(st.text(min_size=1, max_size=20)), n=maybe(st.integers(1, 4).map(float)),  # as sliders send
           temperature=maybe(st.floats(0, 2)),
           top_p=maybe(st.floats(0.05, 1)), max_new_tokens=maybe(st.integers(1, 3)),
           seed=maybe(st.none() | st.integers(0, 9)), session_id=maybe(st.just(gen_sid)),
           x=maybe(st.none() | st.sampled_from(["helpful", "score", "nope"])), y=maybe(st.none()))
    def prop(prompt, n, temperature, top_p, max_new_tokens, seed, session_id, x, y):
        run(lambda: list(app.h.generate(prompt, n, temperature, top_p, max_new_tokens, seed, session_id, x, y)))

    prop()
    assert run.count >= 50


def _event(data):
    return gr.EventData(None, data)


def test_page_drag_and_select(app, run):
    objectives = list(app.owner.objectives)
    direction = st.fixed_dictionaries({
        "round_id": maybe(rounds(app)),
        "named": maybe(named_weights(objectives)),
        "method": maybe(st.sampled_from(["linear", "tchebycheff"])),
        "angle": maybe(st.floats(0, 360)), "index": maybe(st.integers(0, 5)),
    })

    @budget(200)
    @given(data=maybe(direction), session_id=maybe(sessions(app)),
           selected=maybe(st.lists(st.integers(0, 4), max_size=2)), which=st.sampled_from(["drag", "select"]))
    def prop(data, session_id, selected, which):
        if isinstance(data, dict) and "named" in data:  # a generated event (not a hostile dict from ANY)
            named = data["named"]
            objectives, weights = named if isinstance(named, tuple) else (named, named)
            data = {**{k: v for k, v in data.items() if k != "named"}, "objectives": objectives, "weights": weights}
        if which == "drag":
            run(lambda: app.h.store_direction(_event(data), session_id))
        else:
            run(lambda: app.h.select(_event(data), session_id, selected))

    prop()
    assert run.count >= 200


def test_page_axes_rounds_and_load(app, run):
    axis = maybe(st.none() | st.sampled_from(list(app.owner.objectives) + ["score", "nope"]))

    @budget(80)
    @given(round_id=maybe(rounds(app)), session_id=maybe(sessions(app)), x=axis, y=axis,
           query=st.one_of(st.none(), st.text(max_size=30), SURROGATES, st.just(app.owner.session_id)),
           which=st.sampled_from(["axes", "switch", "load"]))
    def prop(round_id, session_id, x, y, query, which):
        if which == "axes":
            run(lambda: app.h.change_axes(x, y, round_id, session_id))
        elif which == "switch":
            run(lambda: app.h.switch_round(round_id, session_id, x, y))
        else:
            out = run(lambda: app.h.load_page(SimpleNamespace(query_params={"session": query})))
            assert out is not None  # a page always loads, whatever the URL says

    prop()
    assert run.count >= 80


def test_compare_and_vote(app, run):
    index = maybe(st.integers(0, 4) | st.sampled_from(["0", "1", "3"]))

    @budget(200)
    @given(session_id=maybe(sessions(app)), round_id=maybe(rounds(app)), a=index, b=index,
           outcome=maybe(st.sampled_from(["a", "b", "tie", "both_bad"])),
           selected=maybe(st.lists(st.integers(0, 4), max_size=3)),
           which=st.sampled_from(["vote", "picked", "clicked", "default", "learned", "mine", "export"]),
           fmt=maybe(st.sampled_from(["trl", "json", "csv"])))
    def prop(session_id, round_id, a, b, outcome, selected, which, fmt):
        ch = app.ch
        calls = {
            "vote": lambda: ch.api_vote(session_id, round_id, a, b, outcome),
            "picked": lambda: ch.open_picked(a, b, session_id, round_id, round_id, None, None),
            "clicked": lambda: ch.open_clicked(session_id, round_id, selected, None, None),
            "default": lambda: ch.open_default(session_id, round_id, None, None),
            "learned": lambda: ch.refresh_learned(session_id, round_id, None, None),
            "mine": lambda: ch.use_mine(session_id, round_id, None, None),
            "export": lambda: ch.export(session_id, fmt),
        }
        out = run(calls[which])
        if which == "vote" and out is not None:
            assert session_id == app.owner.session_id and round_id == app.owner.round_id

    prop()
    assert run.count >= 200


# ----- the import parser -----------------------------------------------------------------------------------
def _mutate(data, draw) -> object:
    """One random change somewhere in a JSON tree: a value replaced by anything, a key removed or added."""
    if not isinstance(data, (dict, list)) or not data or draw(st.integers(0, 3)) == 0:
        return draw(ANY)
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = draw(st.sampled_from(keys))
    action = draw(st.sampled_from(["descend", "descend", "delete", "add"]))
    if action == "delete":
        del data[key]
    elif action == "add" and isinstance(data, dict):
        data[draw(st.text(max_size=8))] = draw(ANY)
    else:
        data[key] = _mutate(data[key], draw)
    return data


def test_import_parser(app, run):
    valid = app.explorer.export_session(app.owner.session_id, "json")

    @budget(280)
    @given(data=st.data(), kind=st.sampled_from(["mutated", "mutated", "mutated", "bytes", "text"]))
    def prop(data, kind):
        if kind == "bytes":
            raw = data.draw(st.binary(max_size=64))
        elif kind == "text":
            raw = data.draw(st.text(max_size=64)).encode("utf-8", "surrogatepass")
        else:
            tree = _mutate(json.loads(valid), data.draw)
            raw = json.dumps(tree).encode("utf-8", "surrogatepass")  # NaN/Infinity written as a hostile file would
        session_id = run(lambda: app.explorer.import_session(raw))
        if session_id is not None:  # accepted: it must open, and draw on the page
            for rnd in app.explorer.session_rounds(session_id):
                app.h.round_view(rnd, None, None, figures=False)

    prop()
    assert run.count >= 280
