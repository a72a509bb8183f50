"""Faults of an OpenAI-compatible server, injected by a fake loopback responder: nothing hangs, errors are clear,
and what arrived whole is kept. (Behaviour on a real server: test_openai_served.py.)"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from mo_explorer import errors
from mo_explorer.config import Settings
from mo_explorer.explorer import Explorer
from mo_explorer.models.judge import Rubric
from mo_explorer.models.openai_backend import OpenAIGenerator, base_url, make_client
from mo_explorer.schema import GenerationParams
from tests import servers

PROMPT = "Say something."


def generator(url: str, timeout: float = 10) -> OpenAIGenerator:
    return OpenAIGenerator(make_client(base_url(f"openai:{url}"), "k", timeout), "fake")


@pytest.fixture
def fake():
    made = []

    def start(handle):
        made.append(servers.FakeServer(handle))
        return made[-1]

    yield start
    for server in made:
        server.close()


def two_choices_one_cut(handler, body):
    """n honoured, but the stream stops after choice 0 ended and before choice 1 did."""
    servers.send_stream(handler, [servers.chunk(0, "Hello"), servers.chunk(1, "Bye"), servers.chunk(0, " there"),
                                  servers.chunk(0, finish="stop"), servers.chunk(1, " now")])


def test_connection_refused():
    with pytest.raises(errors.ModelError, match=r"could not reach the server at http://127\.0\.0\.1:\d+/v1"):
        generator(f"http://127.0.0.1:{servers.free_port()}").generate(PROMPT, GenerationParams(n=2))


def test_http_500_is_reported_with_its_body(fake):
    def fail(handler, body):
        handler.send_response(500)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(b'{"error": "CUDA out of memory"}')

    server = fake(fail)
    with pytest.raises(errors.ModelError, match=r"HTTP 500.*CUDA out of memory.*0 of 2 candidates"):
        generator(server.url).generate(PROMPT, GenerationParams(n=2))
    assert len(server.requests) == 1  # no retries: a retried round would double the server's work


def test_a_stalled_server_times_out(fake):
    def stall(handler, body):
        time.sleep(3)

    with pytest.raises(errors.ModelError, match="did not answer in time"):
        generator(fake(stall).url, timeout=0.3).generate(PROMPT, GenerationParams(n=1))


def test_truncated_stream_keeps_the_finished_candidate(fake):
    server = fake(two_choices_one_cut)
    seen = []
    with pytest.raises(errors.ModelError, match=r"ended before its candidates were complete.*1 of 2 candidates"):
        generator(server.url).generate(PROMPT, GenerationParams(n=2, max_new_tokens=8), on_finish=seen.append)
    assert [g.text for g in seen] == ["Hello there"]
    body = server.requests[0]
    assert body["n"] == 2 and body["stream"] is True and body["max_tokens"] == 8


def test_fewer_choices_than_asked_are_filled(fake):
    def one_choice(handler, body):
        servers.send_stream(handler, [servers.chunk(0, f"seed {body['seed']}"), servers.chunk(0, finish="stop")])

    server = fake(one_choice)
    gen = generator(server.url)
    out = gen.generate(PROMPT, GenerationParams(n=3, seed=10))
    assert sorted(g.text for g in out) == ["seed 10", "seed 11", "seed 12"]  # distinct seeds for the extra ones
    assert [r["n"] for r in server.requests] == [3, 1, 1] and gen.honours_n is False


def test_explorer_stores_what_arrived_and_marks_the_round_failed(fake, tiny_classifier_dir, tmp_path):
    from mo_explorer.models.reward import SequenceClassificationRewardModel
    from mo_explorer.storage.store import Store

    reward = SequenceClassificationRewardModel.load(str(tiny_classifier_dir), cache_dir="unused", device="cpu")
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    explorer = Explorer(Settings.from_env({}), generator(fake(two_choices_one_cut).url), reward, store)
    session = explorer.new_session()
    with pytest.raises(errors.ModelError, match="1 of 2 candidates were received whole"):
        explorer.run_round(PROMPT, GenerationParams(n=2, max_new_tokens=8), session_id=session)
    (rnd,) = explorer.session_rounds(session)
    assert rnd.status == "failed" and [c.text for c in rnd.candidates] == ["Hello there"]
    assert "ended before" in rnd.error


@pytest.mark.parametrize("spec", ["openai:", "openai:localhost:8000", "openai:ftp://x"])
def test_bad_generator_spec(spec):
    with pytest.raises(errors.ModelError, match="http://"):
        base_url(spec)


def test_base_url_appends_v1():
    assert base_url("openai:http://h:1/") == "http://h:1/v1" and base_url("openai:http://h:1/v1") == "http://h:1/v1"


RUBRIC = Rubric(("helpfulness", "correctness"), ("", ""), 1, 10, "")


@pytest.mark.parametrize("answer,values,missing", [
    ('{"helpfulness": 10, "correctness": 1}', [1.0, -1.0], 0),
    ('Sure! ```json\n{"helpfulness": 5.5, "correctness": "10"}\n```', [0.0, 1.0], 0),
    ("Helpfulness: 7/10\ncorrectness = 4", [1 / 3, -1 / 3], 0),
    ('{"helpfulness": 99}', [1.0, 0.0], 1),  # out of scale: clipped; missing criterion: the middle, counted
    ("I cannot rate this.", [0.0, 0.0], 2),
    ('{"helpfulness": null, "correctness": true}', [0.0, 0.0], 2),
])
def test_rubric_parses_what_it_can_and_counts_the_rest(answer, values, missing):
    got, n_missing = RUBRIC.parse(answer)
    np.testing.assert_allclose(got, values, atol=1e-6)
    assert n_missing == missing


@pytest.mark.parametrize("text,match", [
    ('{"criteria": []}', "distinct names"),
    ('{"criteria": [{"name": "a b"}]}', "distinct names"),
    ('{"criteria": [{"name": "a"}], "scale": [5, 1]}', "low < high"),
    ("not json", "expected"),
])
def test_bad_rubric_is_refused(tmp_path, text, match):
    path = tmp_path / "rubric.json"
    path.write_text(text)
    with pytest.raises(errors.ModelError, match=match):
        Rubric.load(path)


def test_rounds_on_a_served_generator_do_not_wait_for_each_other(fake, tiny_classifier_dir, tmp_path):
    """A round held by a stalled server does not hold up another round: served rounds skip the model lock."""
    import threading

    from mo_explorer.models.reward import SequenceClassificationRewardModel
    from mo_explorer.storage.store import Store
    from mo_explorer.ui.app import REMOTE_ROUNDS_AT_ONCE, model_queue

    release = threading.Event()

    def answer(handler, body):
        if "slow" in body["messages"][-1]["content"]:
            release.wait(60)
        servers.send_stream(handler, [servers.chunk(0, "ok"), servers.chunk(0, finish="stop")])

    reward = SequenceClassificationRewardModel.load(str(tiny_classifier_dir), cache_dir="unused", device="cpu")
    explorer = Explorer(Settings.from_env({}), generator(fake(answer).url), reward,
                        Store(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    assert model_queue(explorer)["concurrency_limit"] == REMOTE_ROUNDS_AT_ONCE
    slow: list = []
    thread = threading.Thread(target=lambda: slow.append(explorer.run_round("slow", GenerationParams(n=1))))
    thread.start()
    try:
        quick = explorer.run_round("quick", GenerationParams(n=1))  # finishes while the slow one is held
        assert quick.status == "complete" and not slow
    finally:
        release.set()
        thread.join(60)
    assert slow[0].status == "complete"


def test_a_server_that_honours_n_and_sends_logprobs(fake):
    """vLLM's shape: n choices interleaved in one stream, one log-prob per token (the token counts come from them)."""
    def vllm_like(handler, body):
        servers.send_stream(handler, [
            servers.chunk(0, "Hi", logprobs=[-0.5]), servers.chunk(1, "Hello the", logprobs=[-0.1, -0.2]),
            servers.chunk(1, "re", logprobs=[-0.3]), servers.chunk(1, finish="stop"),
            servers.chunk(0, " you", logprobs=[-0.7]), servers.chunk(0, finish="length")])

    server = fake(vllm_like)
    gen = generator(server.url)
    seen = []
    out = gen.generate(PROMPT, GenerationParams(n=2, max_new_tokens=2), on_finish=seen.append)
    assert [g.text for g in seen] == ["Hello there", "Hi you"]  # in the order they ended
    assert [g.n_tokens for g in out] == [3, 2] and [g.finished for g in out] == [True, False]
    assert out[0].token_logprobs == (-0.1, -0.2, -0.3)
    assert gen.honours_n is True and gen.last_round.requests == 1 and gen.last_round.logprobs is True


def judge_on(url: str):
    from mo_explorer.models.judge import JudgeRewardModel

    return JudgeRewardModel(make_client(base_url(f"judge:{url}", "judge:"), "k", 10), "fake", RUBRIC)


def reply(handler, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def completion(text: str) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": "fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def test_judge_falls_back_to_plain_text_when_structured_output_is_refused(fake):
    def no_schema(handler, body):
        if "response_format" in body:
            reply(handler, 400, {"error": {"message": "response_format is not supported"}})
        else:
            reply(handler, 200, completion("helpfulness: 10, correctness: 1"))

    server = fake(no_schema)
    judge = judge_on(server.url)
    out = judge.score("q", ["a", "b"])
    np.testing.assert_allclose(out.rewards, [[1.0, -1.0], [1.0, -1.0]])
    assert judge.structured is False and judge.unparsed == 0
    judge.score("q", ["c"])  # later calls do not ask for the schema again
    assert sum("response_format" in r for r in server.requests) <= 2 and "response_format" not in server.requests[-1]


def test_judge_server_error_is_a_model_error(fake):
    server = fake(lambda handler, body: reply(handler, 503, {"error": "overloaded"}))
    with pytest.raises(errors.ModelError, match="the judge failed: .*HTTP 503"):
        judge_on(server.url).score("q", ["a"])
