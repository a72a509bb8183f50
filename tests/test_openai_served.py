"""The 'openai:' generator and the 'judge:' reward model against a real server: `transformers serve` on SmolLM2.

That server returns one greedy choice per request whatever `n` and `temperature` say and sends no log-probs; the
tests check what it really did and that the backend made up for it. Few tokens per answer keep them fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from mo_explorer import config, errors
from mo_explorer.explorer import Explorer
from mo_explorer.schema import MEASURED_LENGTH, UNRATED, GenerationParams

pytestmark = pytest.mark.model

PROMPT = [{"role": "user", "content": "Name a fruit."}]


@pytest.fixture(scope="module")
def generator(openai_server):
    from mo_explorer.models.openai_backend import OpenAIGenerator

    url, model = openai_server
    return OpenAIGenerator.load(f"openai:{url}", model, "unused", 60)


def test_candidates_arrive_one_by_one_with_server_counts(generator):
    seen, steps = [], []
    params = GenerationParams(n=3, max_new_tokens=5, temperature=0.9, seed=1)
    out = generator.generate(PROMPT, params, progress=lambda i, total: steps.append((i, total)), on_finish=seen.append)
    assert len(out) == 3 and seen == out  # each reported as it ended, in that order
    stats = generator.last_round
    # What the server really did: one choice for the request that asked for three, so two more were sent.
    assert stats.choices == [1, 1, 1] and stats.requests == 3 and generator.honours_n is False
    assert stats.logprobs is False  # it ignores logprobs too
    # ... and greedy decoding whatever the temperature: the three candidates are the same text.
    assert len({g.text for g in out}) == 1 and out[0].text.strip()
    for g in out:
        assert 1 <= g.n_tokens <= 5 and g.seconds > 0
        assert g.finished == (g.n_tokens < 5)  # cut by max_new_tokens ("length") or ended by the model
    assert [g.seconds for g in out] == sorted(g.seconds for g in out)
    assert steps and all(total == 5 and 1 <= i <= 5 for i, total in steps)


def test_text_grows_while_the_server_streams_each_candidate(generator):
    """The answers' text is handed up while they stream in, each under the row it keeps when it ends."""
    partial: list[list] = []
    params = GenerationParams(n=3, max_new_tokens=24, seed=2)
    out = generator.generate(PROMPT, params, on_partial=partial.append)
    final = {g.row: g.text for g in out}
    assert sorted(final) == [0, 1, 2]  # every candidate knows its row (the fill requests take rows 1 and 2)
    assert partial, "no text was handed up before the candidates ended"
    for rows in partial:
        for g in rows:
            assert not g.finished and g.text.strip()
            assert final[g.row].startswith(g.text)  # what the card showed is how the answer began


def test_later_rounds_skip_the_ignored_n(generator):
    generator.generate(PROMPT, GenerationParams(n=2, max_new_tokens=3))
    assert generator.honours_n is False
    assert generator.last_round.requests == 2 and generator.last_round.choices == [1, 1]


def test_unknown_model_is_a_clear_error(openai_server):
    from mo_explorer.models.openai_backend import OpenAIGenerator

    url, _ = openai_server
    wrong = OpenAIGenerator.load(f"openai:{url}", "no/such-model", "unused", 60)
    with pytest.raises(errors.ModelError, match=r"HTTP 4\d\d.*0 of 2 candidates were received"):
        wrong.generate(PROMPT, GenerationParams(n=2, max_new_tokens=3))


def test_empty_model_list_asks_for_the_setting(openai_server):
    from mo_explorer.models.openai_backend import OpenAIGenerator

    url, _ = openai_server  # transformers serve lists no models for a local folder
    with pytest.raises(errors.ModelError, match="MO_EXPLORER_OPENAI_MODEL"):
        OpenAIGenerator.load(f"openai:{url}", "", "unused", 60)


def head_with_likelihood(directory):
    """The shipped head with a `likelihood` objective added (measured, no gate weight): a head trained with
    `--likelihood-pairs`, as far as loading and scoring go (the shipped head since 2026-12-05 has none)."""
    import shutil

    import torch

    from mo_explorer.models.armo import ArmoHead, HeadConfig
    from mo_explorer.training.options import likelihood_spec

    shipped = ArmoHead.load(config.EMBEDDED_HEAD_DIR)
    cfg = shipped.config
    extra = {**cfg.extra, "measured": {**cfg.extra["measured"], "likelihood": {
        "source": "mean_logprob", "mean": -2.0, "std": 0.6, "model": likelihood_spec()}},
        "reward_offset": list(cfg.extra["reward_offset"]) + [0.0]}
    head = ArmoHead(HeadConfig(**{**cfg.__dict__, "objectives": list(cfg.objectives) + ["likelihood"],
                                  "extra": extra}))
    state = shipped.state_dict()
    with torch.no_grad():
        for name, tensor in head.state_dict().items():
            old = state[name]
            tensor.zero_()
            tensor[tuple(slice(0, n) for n in old.shape)] = old
            if name.endswith("bias") and tensor.shape[0] == len(head.config.objectives):  # a gate's last layer
                tensor[-1] = -1e4 * head.config.temperature
        head.reward_transform_matrix[-1, -1] = 1.0
    head.save(directory)
    for name in ("trunk.safetensors", "trunk.json"):  # the shipped head's `quality` is scored by its trunk
        if (config.EMBEDDED_HEAD_DIR / name).exists():
            shutil.copy2(config.EMBEDDED_HEAD_DIR / name, directory / name)
    return directory


def test_round_through_explorer_with_local_likelihood(openai_server, tmp_path):
    """A whole round: served generator, a reward head with a likelihood objective (read by the local model)."""
    from mo_explorer.models import registry
    from mo_explorer.storage.store import Store

    url, model = openai_server
    settings = config.Settings.from_env({"MO_EXPLORER_GENERATOR": f"openai:{url}", "MO_EXPLORER_OPENAI_MODEL": model,
                                         "MO_EXPLORER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                                         "MO_EXPLORER_REWARD_MODEL": str(head_with_likelihood(tmp_path / "head"))})
    generator = registry.load_generator(settings)
    reward = registry.load_reward_model(settings)
    explorer = Explorer(settings, generator, reward, Store(settings.storage.resolved_url()))
    params = GenerationParams(n=2, max_new_tokens=6, seed=4)
    kinds = [e.kind for e in explorer.stream_round(PROMPT, params)]
    assert kinds[0] == "started" and kinds[-1] == "done" and kinds.count("scored") >= 1
    rnd = explorer.session_rounds(explorer.list_sessions()[0].session_id)[0]
    assert rnd.status == "complete" and rnd.generator_id == f"openai:{model}" and len(rnd.candidates) == 2
    # The server sent no log-probs and is not the likelihood model by id: the reward model read the text itself.
    assert explorer._own_logprobs([generator.generate(PROMPT, GenerationParams(n=1, max_new_tokens=2))[0]]) is None
    lik = rnd.objectives.index("likelihood")
    assert np.all(np.isfinite(rnd.reward_matrix()[:, lik]))
    length = rnd.objectives.index(MEASURED_LENGTH)
    assert [c.rewards[length] for c in rnd.candidates] == [c.n_tokens for c in rnd.candidates]


@pytest.fixture(scope="module")
def judge(openai_server):
    from mo_explorer.models.judge import JudgeRewardModel

    url, model = openai_server
    return JudgeRewardModel.load(f"judge:{url}", model, str(config.REPO_ROOT / "data" / "judge_rubric.json"),
                                 "unused", 60)


def test_judge_rates_on_the_rubric_in_armo_shape(judge):
    responses = ["Paris is the capital of France.", "Bananas are blue."]
    before = (judge.ratings, judge.unparsed)
    out = judge.score("What is the capital of France?", responses)
    assert out.objectives == ("helpfulness", "correctness", "harmlessness", "conciseness")
    assert out.rewards.shape == (2, 4) and out.score.shape == (2,)
    np.testing.assert_allclose(out.gating, 0.25)
    np.testing.assert_array_equal(out.transform, np.eye(4))
    assert np.all(np.abs(out.rewards) <= 1)
    # The rewards are what the server's answers say, parsed; what they did not rate is counted, not invented.
    assert len(judge.last_answers) == 2
    for i, answer in enumerate(judge.last_answers):
        values, missing = judge.rubric.parse(answer)
        np.testing.assert_array_equal(out.rewards[i], values)
        assert out.extras[UNRATED][i] == missing
    assert judge.ratings - before[0] == 8
    assert judge.unparsed - before[1] == int(out.extras[UNRATED].sum())


def test_round_with_served_generator_and_judge(openai_server, judge, generator, tmp_path):
    from mo_explorer.storage.store import Store

    settings = config.Settings.from_env({})
    explorer = Explorer(settings, generator, judge, Store(f"sqlite:///{tmp_path / 'db.sqlite'}"))
    before = judge.unparsed
    events = list(explorer.stream_round(PROMPT, GenerationParams(n=2, max_new_tokens=4)))
    rnd = events[-1].round
    assert rnd.status == "complete" and len(rnd.candidates) == 2
    assert rnd.objectives[:4] == judge.objectives and rnd.reward_model_id.startswith("judge:")
    unread = judge.unparsed - before  # over the round's scoring calls (one per candidate here: they end apart)
    assert 0 <= unread <= 8
    # The count reaches the page's status line ("Done: ... could not read k of 8 ratings"), or nothing is said.
    assert (f"could not read {unread} of 8 ratings" in events[-1].note) if unread else events[-1].note == ""
