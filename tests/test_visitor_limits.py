"""The served page's limits per visitor and on its queue, through HTTP as visitors meet them (tiny models)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from gradio_client import Client

from mo_explorer.ui.visitors import visitor_of
from tests.ui_support import served, tiny_explorer, tiny_settings

LIMITS = {"MO_EXPLORER_ROUNDS_PER_MINUTE": "2", "MO_EXPLORER_VOTES_PER_MINUTE": "2",
          "MO_EXPLORER_IMPORTS_PER_MINUTE": "1", "MO_EXPLORER_MAX_WAITING_ROUNDS": "2",
          "MO_EXPLORER_MAX_ROUND_TOKENS": "40"}


@pytest.fixture
def admissions(monkeypatch) -> list:
    """Every Admission built during the test (the served page's among them), to read its queue from here."""
    from mo_explorer.admission import Admission

    built: list = []
    init = Admission.__init__

    def record(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(Admission, "__init__", record)
    return built


@pytest.fixture
def limited(tiny_lm_dir, tiny_classifier_dir, tmp_path):
    settings = tiny_settings(**LIMITS)
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp_path / "db.sqlite", tmp_path / "cache", settings)
    with served(explorer, settings) as url:
        yield explorer, url


def visitor(url: str, address: str) -> Client:
    """A client seen as `address` (the hop a proxy in front of the app would add)."""
    return Client(url, verbose=False, headers={"X-Forwarded-For": address})


def generate(client: Client, **kw) -> dict:
    args = {"prompt": "Name a colour", "n": 2, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 4, "seed": 1,
            "session_id": "", **kw}
    return client.predict(**args, api_name="/generate")


def test_rounds_votes_and_round_size_are_limited_per_visitor(limited):
    explorer, url = limited
    a, b = visitor(url, "198.51.100.1"), visitor(url, "198.51.100.2")
    first = generate(a)
    generate(a, session_id=first["session_id"])
    with pytest.raises(Exception, match=r"Too many rounds: this demo allows 2 a minute .* Try again in \d+ s"):
        generate(a)
    generate(b)  # another visitor still may
    with pytest.raises(Exception, match="2 x 24 = 48 candidate tokens is more than this demo's 40"):
        generate(b, max_new_tokens=24)
    sid, rid = first["session_id"], first["round_id"]
    for _ in range(2):
        a.predict(sid, rid, 0, 1, "a", api_name="/vote")
    with pytest.raises(Exception, match=r"Too many votes: .* 2 a minute .* Try again in"):
        a.predict(sid, rid, 0, 1, "b", api_name="/vote")
    assert len(explorer.list_votes(sid)) == 2  # the refused vote stored nothing


def test_the_queue_is_capped_with_how_many_rounds_are_ahead(admissions, limited, monkeypatch):
    explorer, url = limited
    generate_fn, started, release = explorer.generator.generate, threading.Event(), threading.Event()

    def held(messages, params, progress=None, on_finish=None, **kw):
        started.set()
        release.wait(60)
        return generate_fn(messages, params, progress=progress, on_finish=on_finish, **kw)

    monkeypatch.setattr(explorer.generator, "generate", held)
    clients = [visitor(url, f"203.0.113.{i}") for i in range(3)]
    try:
        running = clients[0].submit("Say hi", 2, 1.0, 1.0, 4, 1, "", api_name="/generate")
        assert started.wait(60)
        waiting = clients[1].submit("Say hi", 2, 1.0, 1.0, 4, 2, "", api_name="/generate")
        deadline = time.monotonic() + 30
        while max(a.waiting() for a in admissions) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(Exception, match=r"The demo is busy: 2 rounds ahead, about \d+ s\. Try again in \d+ s"):
            generate(clients[2])
    finally:
        release.set()
    assert running.result(timeout=120)["status"] == "complete"
    assert waiting.result(timeout=120)["status"] == "complete"
    generate(clients[2])  # the queue drained: the same visitor is let in


def test_a_busy_page_says_how_big_the_round_is_this_time(tiny_lm_dir, tiny_classifier_dir, tmp_path, monkeypatch):
    from mo_explorer.ui.app import build_demo

    settings = tiny_settings(MO_EXPLORER_QUEUE_DRAIN_SECONDS="0.001")
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp_path / "db.sqlite", tmp_path / "cache", settings)
    demo = build_demo(explorer, settings)
    h = demo.mo_handlers
    ahead = h.admission.admit("someone else", 4, 16)  # a round in the queue before this one
    try:
        updates = list(h.generate("Name a fruit", 4, 1.0, 1.0, 16, 3, "", None, None))
    finally:
        h.admission.finish(ahead)
    said = [u[h.c.status] for u in updates if h.c.status in u]
    assert said[0].startswith("The demo is busy: 2 x 16 this time (1 round ahead")
    assert "The demo was busy: 2 x 16 this time." in said[-1]
    rnd = explorer.session_rounds(explorer.list_sessions(1)[0].session_id)[-1]
    assert rnd.params.n == 2 and len(rnd.candidates) == 2


def test_imports_per_minute_on_the_page(tiny_lm_dir, tiny_classifier_dir, tmp_path):
    from mo_explorer.ui.app import build_demo

    settings = tiny_settings(MO_EXPLORER_IMPORTS_PER_MINUTE="1")
    explorer = tiny_explorer(tiny_lm_dir, tiny_classifier_dir, tmp_path / "db.sqlite", tmp_path / "cache", settings)
    demo = build_demo(explorer, settings)
    rnd = explorer.run_round("Hi")
    file = tmp_path / "s.json"
    file.write_text(explorer.export_session(rnd.session_id, "json"))
    someone = SimpleNamespace(headers={"x-forwarded-for": "192.0.2.9"}, client=SimpleNamespace(host="127.0.0.1"))
    demo.mo_compare_handlers.import_session(str(file), someone)
    with pytest.raises(Exception, match=r"Too many imports: .* 1 a minute .* Try again in"):
        demo.mo_compare_handlers.import_session(str(file), someone)


def test_the_visitor_is_the_hop_the_nearest_proxy_saw():
    def req(forwarded, host="10.9.8.7"):
        return SimpleNamespace(headers={"x-forwarded-for": forwarded} if forwarded else {},
                               client=SimpleNamespace(host=host))

    assert visitor_of(None) is None
    assert visitor_of(req(None)) == "10.9.8.7"
    assert visitor_of(req("6.6.6.6, 192.0.2.1")) == "192.0.2.1"  # the client wrote the first hop itself
