"""train -> head directory -> HeadRewardModel -> eval, end to end on a tiny backbone and tiny hand-made data."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from mo_explorer import config
from mo_explorer.training import train

GOOD = ["Paris is the capital of France.", "Water boils at 100 degrees Celsius at sea level.",
        "Here is a detailed, helpful answer with several steps: first, second, third.",
        "```python\ndef add(a, b):\n    return a + b\n```\nThis function adds two numbers."]
BAD = ["I cannot help with that request, sorry.", "Hello.", "The sea and the wind.", "No."]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """Write rows as gzip JSON Lines."""
    with gzip.open(path, "wt") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def tiny_data(tmp: Path, subsets: tuple[str, str] = ("s1", "s2")) -> tuple[Path, Path]:
    """A ratings file and a pairs file in our formats (12 prompts; pairs alternate between two subsets)."""
    ratings, pairs = [], []
    for i in range(12):
        prompt = [{"role": "user", "content": f"Question number {i}: tell me something useful about topic {i}."}]
        for j, (g, b) in enumerate(zip(GOOD, BAD)):
            obj = ["helpfulness", "overall", "harmlessness", "compliance"][(i + j) % 4]
            for text, value in ((g, 0.9), (b, 0.1)):
                row = {"id": f"r{i}-{j}-{value}", "source": "tiny", "prompt": prompt, "response": text,
                       "helpfulness": None, "overall": None, "harmlessness": None, "compliance": None}
                row[obj] = value
                ratings.append(row)
            pairs.append({"id": f"p{i}-{j}", "source": "tiny", "subset": subsets[j % 2], "prompt": prompt,
                          "chosen": g, "rejected": b})
    return write_jsonl(tmp / "ratings.jsonl.gz", ratings), write_jsonl(tmp / "pairs.jsonl.gz", pairs)


def train_args(tmp: Path, lm: Path, out: Path, subsets: tuple[str, str] = ("s1", "s2"),
               **overrides) -> argparse.Namespace:
    """Parsed train arguments for the tiny backbone."""
    ratings, pairs = tiny_data(tmp, subsets)
    parser = argparse.ArgumentParser()
    train.configure(parser)
    argv = ["--ratings", str(ratings), "--pairs", str(pairs), "--backbone", str(lm), "--layer", "2",
            "--likelihood-model", str(lm), "--out", str(out), "--pairs-limit", "40", "--contrastive", "4",
            "--likelihood-pairs", "40", "--gate-steps", "60", "--features", str(tmp / "features")]
    for k, v in overrides.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def trained_head(tiny_lm_dir, tmp_path_factory):
    """A head trained on tiny data with the tiny LM as backbone and likelihood model."""
    tmp = tmp_path_factory.mktemp("train")
    out = tmp / "head"
    settings = config.Settings(models=config.ModelSettings(cache_dir=str(tmp / "cache"), device="cpu"))
    args = train_args(tmp, tiny_lm_dir, out)
    assert train.main(args, settings) == 0
    return out, settings, tmp


def test_train_writes_a_loadable_head(trained_head):
    out, settings, _ = trained_head
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["objectives"][-2:] == ["verbosity", "likelihood"]
    assert cfg["backbone"]["layers"] == [2] and cfg["extra"]["head_layer"] == 2
    assert cfg["gate_members"] == 5 and len(cfg["extra"]["training"]["gate"]["member_train_accuracy"]) == 5
    assert (out / "model.safetensors").stat().st_size < 2_000_000
    assert cfg["extra"]["training"]["gate"]["pairs"]["s1"] > 0
    card = (out / "MODEL_CARD.md").read_text()
    assert "non-commercial" in card and "| verbosity |" in card and "Gate concentration" in card


def test_retraining_keeps_the_card_notes_and_last_ablation(trained_head, tmp_path):
    import shutil

    from mo_explorer.training.card import ABLATION_FILE, NOTES_FILE, write_card

    out, _, tmp = trained_head
    head = tmp_path / "head"
    shutil.copytree(out, head)
    (head / NOTES_FILE).write_text("Chosen on the 1,200 sample; caveat: chat is near chance.\n")
    (head / ABLATION_FILE).write_text("## Ablation (dev, 95% Wilson intervals)\n\n| variant | overall |\n")
    card = write_card(head).read_text()  # what `train` does after fitting
    assert "## Shipped configuration\n\nChosen on the 1,200 sample" in card
    assert card.index("## Shipped configuration") < card.index("## Backbone and features")
    assert "## Ablation (dev, 95% Wilson intervals)\n\n| variant | overall |" in card
    fresh = write_card(head, ablation="| new | table |").read_text()
    assert "| new | table |" in fresh and "| variant | overall |" not in fresh
    command = train.command_line(train.TrainConfig.from_args(train_args(tmp, tmp / "lm", head)))
    assert "--features" not in command and "--gate-seeds 5" in command
    assert "--out" in command and "--out" not in train.command_line(
        train.TrainConfig.from_args(train_args(tmp, tmp / "lm", head)), skip=("out",))


def test_command_line_reproduces_the_config(tmp_path):
    """The card's command, parsed again, gives the same config (a switched-off default flag included)."""
    import shlex

    for extra, length_in_score in (({}, True), ({}, False), ({"preference_l2": 0.01}, True)):
        args = train_args(tmp_path, tmp_path / "lm", tmp_path / "head", **extra)
        args.verbosity_in_score = length_in_score
        cfg = train.TrainConfig.from_args(args)
        parser = argparse.ArgumentParser()
        train.configure(parser)
        argv = shlex.split(train.command_line(cfg))[4:]  # after "python -m mo_explorer train"
        again = train.TrainConfig.from_args(parser.parse_args([*argv, "--features", str(cfg.features)]))
        assert again == cfg, (extra, length_in_score)


def test_head_reward_identity_and_full_pass(trained_head):
    from mo_explorer.models.head_reward import HeadRewardModel

    out, settings, _ = trained_head
    model = HeadRewardModel.load(out, settings.models.cache_dir, device="cpu")
    assert model.model_id.startswith("embedded-head:")
    prompt = [{"role": "user", "content": "Tell me something useful."}]
    res = model.score(prompt, GOOD[:3])
    assert res.rewards.shape == (3, len(model.objectives)) and res.rewards.dtype == np.float32
    np.testing.assert_allclose(res.score, np.sum(res.gating * (res.rewards @ res.transform), axis=1), atol=1e-5)
    assert res.extras["mean_logprob"].shape == (3,)
    full = model.score_full_pass(prompt, GOOD[:3])
    np.testing.assert_allclose(res.score, full.score, atol=1e-3)
    np.testing.assert_allclose(res.rewards, full.rewards, atol=1e-3)
    # The verbosity objective follows length: the longest response gets the highest value.
    v = model.objectives.index("verbosity")
    assert int(np.argmax(res.rewards[:, v])) == 2


@pytest.mark.parametrize("fmt", ["ours", "rewardbench", "trl"])
def test_eval_command_on_each_format(trained_head, fmt):
    from mo_explorer.training import evaluate

    out, settings, tmp = trained_head
    rows = []
    for i, (g, b) in enumerate(zip(GOOD, BAD)):
        q = f"Question number {i}: tell me something useful about topic {i}."
        if fmt == "ours":
            rows.append({"subset": "a" if i % 2 else "b", "prompt": [{"role": "user", "content": q}],
                         "chosen": g, "rejected": b, "chosen_style": i % 3, "rejected_style": 1})
        elif fmt == "rewardbench":
            rows.append({"id": i, "subset": "a" if i % 2 else "b", "prompt": q, "chosen": g, "rejected": b})
        else:
            rows.append({"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": g}],
                         "rejected": [{"role": "assistant", "content": b}]})
    path = tmp / f"{fmt}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parser = argparse.ArgumentParser()
    evaluate.configure(parser)
    args = parser.parse_args([str(path), "--rm", str(out), "--out", str(tmp / f"{fmt}.json"), "--limit", "4"])
    assert evaluate.main(args, settings) == 0
    res = json.loads((tmp / f"{fmt}.json").read_text())
    assert 0.0 <= res["accuracy"] <= 1.0 and sum(s["n"] for s in res["subsets"].values()) == 4
    assert set(res["objective_agreement"]) == set(json.loads((out / "config.json").read_text())["objectives"])
    assert "ece" in res and ("difficulty" in res) == (fmt == "ours")


def test_eval_keeps_features_and_reuses_them(trained_head, tmp_path, monkeypatch):
    """A second eval on the same texts encodes nothing, and scores exactly as a live pass does."""
    from mo_explorer.models.features import CausalLMFeatures
    from mo_explorer.training import evaluate

    out, settings, _ = trained_head
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"subset": "s", "prompt": f"Question {i}?", "chosen": g, "rejected": b}) + "\n"
                            for i, (g, b) in enumerate(zip(GOOD, BAD))))
    parser = argparse.ArgumentParser()
    evaluate.configure(parser)

    def run(*extra: str) -> dict:
        target = tmp_path / f"r{len(list(tmp_path.glob('r*.json')))}.json"
        assert evaluate.main(parser.parse_args([str(path), "--rm", str(out), "--out", str(target), *extra]),
                             settings) == 0
        return json.loads(target.read_text())

    first = run("--features", str(tmp_path / "features"))
    assert any((tmp_path / "features").rglob("*.npz"))

    def no_encoding(*_args, **_kwargs):
        raise AssertionError("features should have come from the cache")

    monkeypatch.setattr(CausalLMFeatures, "encode", no_encoding)
    monkeypatch.setattr(CausalLMFeatures, "encode_items", no_encoding)
    again = run("--features", str(tmp_path / "features"))
    monkeypatch.undo()
    live = run("--no-feature-cache")
    assert first["accuracy"] == again["accuracy"] == live["accuracy"]
    for objective, value in live["objective_agreement"].items():
        assert again["objective_agreement"][objective]["accuracy"] == pytest.approx(value["accuracy"])


def test_eval_without_out_prints_results(trained_head, capsys):
    from mo_explorer.training import evaluate

    out, settings, tmp = trained_head
    path = tmp / "print.jsonl"
    path.write_text(json.dumps({"prompt": "Question?", "chosen": GOOD[0], "rejected": BAD[0]}) + "\n")
    parser = argparse.ArgumentParser()
    evaluate.configure(parser)
    assert evaluate.main(parser.parse_args([str(path), "--rm", str(out)]), settings) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 1 and set(res["subsets"]) == {"all"}


def test_head_reads_the_layer_it_records(trained_head, tmp_path):
    """A backbone spec may capture several layers in one pass; the head must read the one it was trained on."""
    import shutil

    from mo_explorer.errors import ModelError
    from mo_explorer.models.head_reward import HeadRewardModel

    out, settings, _ = trained_head
    prompt = [{"role": "user", "content": "Tell me something useful."}]
    reference = HeadRewardModel.load(out, settings.models.cache_dir, device="cpu").score(prompt, GOOD[:3])

    def variant(layer: int) -> Path:
        head = tmp_path / f"layer{layer}"
        shutil.copytree(out, head)
        cfg = json.loads((head / "config.json").read_text())
        cfg["backbone"]["layers"] = [1, 2]
        cfg["extra"]["head_layer"] = layer
        (head / "config.json").write_text(json.dumps(cfg))
        return head

    two = HeadRewardModel.load(variant(2), settings.models.cache_dir, device="cpu").score(prompt, GOOD[:3])
    np.testing.assert_allclose(two.score, reference.score, atol=1e-4)
    one = HeadRewardModel.load(variant(1), settings.models.cache_dir, device="cpu").score(prompt, GOOD[:3])
    assert not np.allclose(one.rewards, reference.rewards, atol=1e-3)
    with pytest.raises(ModelError, match="head_layer"):
        HeadRewardModel.load(variant(3), settings.models.cache_dir, device="cpu")


def test_likelihood_rows_come_from_the_arguments_not_the_cache(trained_head):
    """The fixture's run cached the likelihood of 40 pairs; a run asking for 4 must not use the other 36."""
    _, settings, tmp = trained_head
    lm = Path(json.loads((tmp / "head" / "config.json").read_text())["backbone"]["name"])

    def measured_pairs(n: int) -> int:
        prep = train.prepare(train.TrainConfig.from_args(train_args(tmp, lm, tmp / "unused", likelihood_pairs=n)),
                             settings)
        return int((np.isfinite(prep.chosen.logprob) & np.isfinite(prep.rejected.logprob)).sum())

    few, many = measured_pairs(4), measured_pairs(40)
    # Pairs sharing a measured text (rating-derived pairs reuse the sampled responses) count too.
    assert 4 <= few < many


def test_likelihood_tokens_reach_the_head(trained_head):
    """--likelihood-tokens cuts the responses the likelihood model reads, in training and in the shipped config."""
    from mo_explorer.models.head_reward import HeadRewardModel

    _, settings, tmp = trained_head
    lm = Path(json.loads((tmp / "head" / "config.json").read_text())["backbone"]["name"])
    out = tmp / "short_likelihood"
    assert train.main(train_args(tmp, lm, out, likelihood_tokens=3, gate_steps=5), settings) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["extra"]["measured"]["likelihood"]["model"]["max_response_tokens"] == 3
    prompt = [{"role": "user", "content": "Tell me something useful."}]
    # GOOD[2] is long: its mean log-prob over 3 tokens differs from the one over 128.
    short = HeadRewardModel.load(out, settings.models.cache_dir, device="cpu").score(prompt, GOOD[2:3])
    full = HeadRewardModel.load(tmp / "head", settings.models.cache_dir, device="cpu").score(prompt, GOOD[2:3])
    assert abs(float(short.extras["mean_logprob"][0]) - float(full.extras["mean_logprob"][0])) > 1e-3


@pytest.mark.parametrize("override,message", [({"per_objective": "[1, 2]"}, "--per-objective"),
                                               ({"per_objective": '{"overall": 2.5}'}, "--per-objective"),
                                               ({"pairs_limit": 0}, "--pairs-limit")])
def test_the_training_config_is_checked_once_when_built(tmp_path, override, message):
    from mo_explorer.errors import UserError

    with pytest.raises(UserError, match=message):
        train.TrainConfig.from_args(train_args(tmp_path, tmp_path / "lm", tmp_path / "out", **override))
    cfg = train.TrainConfig.from_args(train_args(tmp_path, tmp_path / "lm", tmp_path / "out"))
    assert cfg.per_objective == train.DEFAULT_PER_OBJECTIVE and cfg.grouped == () and cfg.layer == 2


def test_loso_leaves_each_source_out_of_training_and_scores_it(tiny_lm_dir, tmp_path):
    """I validate with --validate loso: each source is scored by a recipe that never saw it."""
    import json

    from mo_explorer.training import validate

    out = tmp_path / "head"
    settings = config.Settings(models=config.ModelSettings(cache_dir=str(tmp_path / "cache"), device="cpu"))
    args = train_args(tmp_path, tiny_lm_dir, out, subsets=("rmb-helpfulness", "alpacaeval"), validate="loso",
                      gate_seeds=1)
    cfg = train.TrainConfig.from_args(args)
    prep = train.prepare(cfg, settings)
    seen = {}

    def recording_fit(p, c, subsets):
        seen[len(seen)] = (subsets, np.isfinite(p.labels["helpfulness"]).any())
        return train.fit(p, c, subsets=subsets)

    for i, source in enumerate(("alpacaeval", "rmb-helpfulness")):
        result = validate.fold(prep, cfg, source, recording_fit)
        subsets, helpfulness_rows = seen[i]
        assert source not in subsets and result["n"] == sum(validate.source_of(p) == source for p in prep.pairs) > 0
        assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["longer_wins"] <= 1.0
        # AlpacaEval's judge rated the helpfulness rows too: leaving it out leaves them, and the pairs ranked
        # from them, out
        assert helpfulness_rows == (source != "alpacaeval")
        assert ("ratings-helpfulness" in subsets) == (source != "alpacaeval")
        assert sum(s["n"] for s in result["subsets"].values()) == result["n"]
        assert ("helpfulness" in result["objectives"]) == (source != "alpacaeval")
    assert validate.fold(prep, cfg, "rmb-harmlessness", recording_fit) == {"n": 0}  # no such pairs: no fit
    assert len(seen) == 2

    assert train.main(args, settings) == 0  # the command: the table printed, written and in the card
    loso = json.loads((out / "loso.json").read_text())
    assert set(loso["folds"]) == set(validate.HELD_OUT_SOURCES)
    assert loso["worst"] <= loso["mean"]
    assert "| alpacaeval |" in (out / "loso.md").read_text()
    assert "Leave-one-source-out validation" in (out / "MODEL_CARD.md").read_text()


def test_likelihood_ratio_is_the_conditional_minus_the_unconditional_log_prob(tiny_lm_dir, tmp_path):
    """The measured ratio variant reads, per response, log p(r | prompt) - log p(r | an empty turn), both from the
    likelihood model itself; rows the likelihood was not measured on stay unmeasured; the table has both rows."""
    from mo_explorer.models.features import FeatureSpec, load_extractor
    from mo_explorer.training import likelihood_ratio
    from mo_explorer.training.feature_cache import FeatureCache

    settings = config.Settings(models=config.ModelSettings(cache_dir=str(tmp_path / "cache"), device="cpu"))
    args = train_args(tmp_path, tiny_lm_dir, tmp_path / "head", subsets=("rmb-helpfulness", "alpacaeval"),
                      gate_seeds=1, likelihood_pairs=10)
    cfg = train.TrainConfig.from_args(args)
    prep = train.prepare(cfg, settings)
    spec = train.run_likelihood_spec(cfg)
    cache = FeatureCache(cfg.features, spec)
    ratio = likelihood_ratio.ratio_prepared(prep, cache, spec, settings)
    measured = np.isfinite(prep.chosen.logprob)
    assert 0 < measured.sum() < len(prep.pairs)
    assert np.array_equal(np.isfinite(ratio.chosen.logprob), measured)
    extractor = load_extractor(FeatureSpec.from_json(spec), settings.models.cache_dir, "cpu")
    i = int(np.flatnonzero(measured)[0])
    pair = prep.pairs[i]
    given = extractor.encode(pair.prompt, [pair.chosen]).mean_logprob[0]
    alone = extractor.encode(likelihood_ratio.EMPTY_TURN, [pair.chosen]).mean_logprob[0]
    assert given != pytest.approx(alone, abs=1e-3)  # the prompt matters to the model, so the test can fail
    np.testing.assert_allclose(ratio.chosen.logprob[i], given - alone, atol=1e-4)
    np.testing.assert_allclose(prep.chosen.logprob[i], given, atol=1e-4)  # the shipped recipe's rows untouched
    half = likelihood_ratio.ratio_prepared(prep, cache, spec, settings, weight=0.5)
    np.testing.assert_allclose(half.chosen.logprob[i], given - 0.5 * alone, atol=1e-4)


def test_likelihood_ratio_command_compares_every_variant_on_every_column(tiny_lm_dir, tmp_path):
    from mo_explorer.training import likelihood_ratio, validate

    settings = config.Settings(models=config.ModelSettings(cache_dir=str(tmp_path / "cache"), device="cpu"))
    args = train_args(tmp_path, tiny_lm_dir, tmp_path / "head", subsets=("rmb-helpfulness", "alpacaeval"),
                      gate_seeds=1, likelihood_pairs=20, dev=tmp_path / "pairs.jsonl.gz", dev_limit=12)
    result = likelihood_ratio.run(args, settings)
    assert list(result["rows"]) == ["likelihood (shipped recipe)", "likelihood ratio",
                                    "likelihood - 0.5 x unconditional"]
    for row in result["rows"].values():
        assert row["loso"]["folds"]["alpacaeval"]["n"] > 0 and row["dev"]["n"] == 12
    assert set(validate.HELD_OUT_SOURCES) <= set(result["markdown"].splitlines()[0].split(" | "))
    assert result["markdown"].count("\n| likelihood") == 3


def test_ceiling_command_scores_each_source_with_the_heads_of_its_fold(tiny_lm_dir, tmp_path):
    """I run the ceiling command: each source with pairs gets its LOSO cell (the same as --validate loso gives)
    beside its in-source ceilings; a source without pairs gets an empty row."""
    from mo_explorer.training import ceiling, validate

    settings = config.Settings(models=config.ModelSettings(cache_dir=str(tmp_path / "cache"), device="cpu"))
    args = train_args(tmp_path, tiny_lm_dir, tmp_path / "head", subsets=("rmb-helpfulness", "alpacaeval"),
                      gate_seeds=1, likelihood_pairs=20)
    result = ceiling.run(args, settings)
    rows = result["rows"]
    assert rows["rmb-harmlessness"] == {"n": 0}
    cfg = train.TrainConfig.from_args(args)
    prep = train.prepare(cfg, settings)
    for source in ("rmb-helpfulness", "alpacaeval"):
        row = rows[source]
        loso = validate.fold(prep, cfg, source, lambda p, c, subsets: train.fit(p, c, subsets=subsets))
        assert row["n"] == loso["n"] > 0
        assert row["loso"] == pytest.approx(loso["accuracy"]) and row["longer_wins"] == loso["longer_wins"]
        for key in ("in_source_gate", "fixed_nonnegative", "fixed_any_sign"):
            assert 0.0 <= row[key] <= 1.0
        assert ("helpfulness" in row["objectives"]) == (source != "alpacaeval")
    assert result["command"].startswith("python -m mo_explorer.training.ceiling ")
    assert result["markdown"].count("\n| ") == len(validate.HELD_OUT_SOURCES)  # a row per source


def test_dev_tables_measure_the_likelihood_of_dev_answers_the_training_never_saw(tiny_lm_dir, tmp_path):
    """The comparison commands score dev pairs with the likelihood the head is trained with: on a fresh cache,
    dev answers that no training row shares still get a measured log-prob (they were NaN, so a likelihood
    variant could not differ on dev except through its gate)."""
    from mo_explorer.training import ablate

    settings = config.Settings(models=config.ModelSettings(cache_dir=str(tmp_path / "cache"), device="cpu"))
    dev = write_jsonl(tmp_path / "dev.jsonl.gz", [
        {"id": f"d{i}", "source": "dev", "subset": "rmbench-chat",
         "prompt": [{"role": "user", "content": f"Dev question {i}: what is {i} plus {i}?"}],
         "chosen": f"{i} plus {i} is {2 * i}.", "rejected": f"{i} plus {i} is {2 * i + 1}, I think."}
        for i in range(6)])
    args = train_args(tmp_path, tiny_lm_dir, tmp_path / "head", gate_seeds=1, likelihood_pairs=10, dev=dev,
                      dev_limit=6)
    cfg = train.TrainConfig.from_args(args)
    prep = train.prepare(cfg, settings)
    pairs, chosen, rejected = ablate.dev_tables(cfg, settings, prep.spec, cfg.dev_limit, cfg.seed)
    assert len(pairs) == 6
    assert np.isfinite(chosen.logprob).all() and np.isfinite(rejected.logprob).all()
    assert not np.allclose(chosen.logprob, rejected.logprob)


def test_source_weighting_puts_a_sources_subsets_in_one_group():
    """With --gate-weighting source, six rating pairs of one objective share the rating pairs' weight (with
    `subset` they weighed as much as 948 RMB pairs), and every constructed pair shares one group."""
    from mo_explorer.training import data as D

    def pair(pid: str, subset: str) -> D.PairRow:
        return D.PairRow(pid, subset, [{"role": "user", "content": "q"}], "a", "b")

    pairs = [pair("rating/a/b", "ratings-helpfulness"), pair("rating/c/d", "ratings-compliance"),
             pair("rmb/1", "rmb-helpfulness"), pair("neighbour/1", "neighbour"), pair("padding/1", "padding")]
    assert [train.weight_group(p, "source") for p in pairs] == \
        ["ratings", "ratings", "rmb-helpfulness", "constructed", "constructed"]
    assert [train.weight_group(p, "subset") for p in pairs] == [p.subset for p in pairs]


def test_a_linear_gate_trains_loads_and_reads_the_prompt(tiny_lm_dir, tmp_path):
    """I train with --gate-layers 0: the head stores a gate without hidden layers, loads, and its weights still
    depend on the prompt."""
    from mo_explorer.models.head_reward import HeadRewardModel

    out = tmp_path / "head"
    settings = config.Settings(models=config.ModelSettings(cache_dir=str(tmp_path / "cache"), device="cpu"))
    assert train.main(train_args(tmp_path, tiny_lm_dir, out, gate_layers=0, gate_seeds=2), settings) == 0
    assert json.loads((out / "config.json").read_text())["gate_layers"] == 0
    model = HeadRewardModel.load(out, settings.models.cache_dir, device="cpu")
    a = model.score([{"role": "user", "content": "Question number 1: tell me something."}], GOOD[:2])
    b = model.score([{"role": "user", "content": "Write a poem about the sea, please."}], GOOD[:2])
    assert not np.allclose(a.gating, b.gating)
    np.testing.assert_allclose(a.score, np.sum(a.gating * (a.rewards @ a.transform), axis=1), atol=1e-5)
