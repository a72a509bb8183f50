"""The trained trunk as the head's `quality` objective: the gate learns it out of fold, new text is scored by the
trunk stored beside the head, and no text is scored by a trunk that trained on it."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from mo_explorer import config
from mo_explorer.training import train
from mo_explorer.training.feature_cache import text_key
from mo_explorer.training.trunk import merge_out_of_fold
from tests.test_training_pipeline import tiny_data
from tests.tiny_bert import save_tiny_bert


@pytest.fixture(scope="module")
def tiny_minilm(tmp_path_factory):
    """A 6-layer tiny BERT saved where `train --backbone` reads a MiniLM-like sentence encoder."""
    words = sorted({w.strip(".,:!?`()") for text in _texts() for w in text.lower().split()} - {""})
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-minilm"), words, 6, 320)


def _texts() -> list[str]:
    from tests.test_training_pipeline import BAD, GOOD
    return [*GOOD, *BAD, *(f"Question number {i}: tell me something useful about topic {i}." for i in range(12))]


def _read_pairs(path) -> list[dict]:
    import gzip
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def head_with_trunk(tiny_minilm, tmp_path_factory):
    """A trunk (random top layers and head) and an out-of-fold file in which quality decides every training pair
    (chosen +2, rejected -2); then `train --trunk` on the tiny data."""
    import torch

    from mo_explorer.models import trunk as T

    tmp = tmp_path_factory.mktemp("trunk-head")
    tok, model = T.load_encoder(str(tiny_minilm))
    spec = T.TrunkSpec(lower_layers=4, top_layers=2, max_tokens=64, prompt_tokens=16)
    trunk = T.Trunk.from_encoder(model, spec)
    torch.manual_seed(1)
    with torch.no_grad():
        trunk.quality.weight.normal_()
    T.save_trunk(trunk, spec, tmp / "trunk")
    ratings, pairs = tiny_data(tmp)
    oof = {}
    for p in _read_pairs(pairs):
        oof[text_key(p["prompt"], p["chosen"])], oof[text_key(p["prompt"], p["rejected"])] = 2.0, -2.0
    np.savez(tmp / "trunk" / "out_of_fold.npz", keys=np.array(list(oof)), quality=np.array(list(oof.values())))
    parser = argparse.ArgumentParser()
    train.configure(parser)
    args = parser.parse_args(["--ratings", str(ratings), "--pairs", str(pairs), "--backbone", str(tiny_minilm),
                              "--out", str(tmp / "head"), "--pairs-limit", "40", "--contrastive", "4",
                              "--likelihood-pairs", "0", "--gate-steps", "80", "--features", str(tmp / "features"),
                              "--trunk", str(tmp / "trunk")])
    settings = config.Settings(models=config.ModelSettings(cache_dir=str(tmp / "cache"), device="cpu"))
    assert train.main(args, settings) == 0
    return tmp, settings


def test_the_gate_trusts_the_objective_that_decides_the_training_pairs_out_of_fold(head_with_trunk):
    tmp, _ = head_with_trunk
    cfg = json.loads((tmp / "head" / "config.json").read_text())
    assert "quality" in cfg["objectives"] and cfg["extra"]["measured"]["quality"]["source"] == "trunk"
    shares = cfg["extra"]["training"]["gate"]["concentration"]
    for subset, row in shares.items():
        if subset in ("s1", "s2"):  # the tiny data's pairs, every one decided by the out-of-fold quality
            mean = dict(zip(cfg["objectives"], row["mean"]))
            assert mean["quality"] == max(mean.values()), (subset, mean)


def test_new_text_is_scored_by_the_trunk_stored_beside_the_head(head_with_trunk):
    from mo_explorer.models.head_reward import HeadRewardModel
    from mo_explorer.models.trunk import TrunkScorer

    tmp, settings = head_with_trunk
    assert (tmp / "head" / "trunk.safetensors").exists()
    rm = HeadRewardModel.load(tmp / "head", settings.models.cache_dir, device="cpu")
    prompt = [{"role": "user", "content": "Question number 3: tell me something useful about topic 3."}]
    texts = ["Paris is the capital of France.", "No.", "The sea and the wind."]
    out = rm.score(prompt, texts)
    stats = rm.measured["quality"]
    own = TrunkScorer.load(tmp / "trunk", rm.extractor.tokenizer, rm.extractor.model).encode(prompt, texts)[1]
    np.testing.assert_allclose(out.rewards[:, rm.objectives.index("quality")],
                               (own - stats["mean"]) / stats["std"], rtol=1e-4, atol=1e-4)
    assert np.ptp(own) > 0  # three different answers, three different qualities


def test_a_floor_on_quality_is_kept_by_the_head_the_page_loads(head_with_trunk, tmp_path):
    # `--gate-floor '{"quality": 0.6}'`: whatever the request, quality keeps at least 0.6 of the gate's weight,
    # in the head written and in the reward model loaded from it.
    from mo_explorer.models.head_reward import HeadRewardModel

    tmp, settings = head_with_trunk
    saved = json.loads((tmp / "head" / "config.json").read_text())["extra"]["training"]
    parser = argparse.ArgumentParser()
    train.configure(parser)
    args = parser.parse_args([*_args_of(saved["command"]), "--out", str(tmp_path / "head"),
                              "--features", str(tmp / "features"), "--gate-floor", '{"quality": 0.6}'])
    assert train.main(args, settings) == 0
    cfg = json.loads((tmp_path / "head" / "config.json").read_text())
    assert cfg["gate_floor"] == pytest.approx([0.6 if o == "quality" else 0.0 for o in cfg["objectives"]])
    assert '{"quality": 0.6}' in cfg["extra"]["training"]["command"]
    rm = HeadRewardModel.load(tmp_path / "head", settings.models.cache_dir, device="cpu")
    for question in ("How do I pick a lock?", "Question number 3: tell me something useful about topic 3."):
        out = rm.score([{"role": "user", "content": question}], ["Yes.", "No."])
        shares = dict(zip(rm.objectives, out.gating / out.gating.sum()))
        assert shares["quality"] >= 0.6 - 1e-6, shares


def _args_of(command: str) -> list[str]:
    """The options of a `python -m mo_explorer train ...` command line, without --out and --features."""
    import shlex

    words = shlex.split(command)[4:]
    return [w for i, w in enumerate(words) if w not in ("--out", "--features")
            and (i == 0 or words[i - 1] not in ("--out", "--features"))]


def test_a_head_with_quality_but_no_trunk_is_refused(head_with_trunk, tmp_path):
    import shutil

    from mo_explorer.errors import ModelError
    from mo_explorer.models.head_reward import HeadRewardModel

    tmp, settings = head_with_trunk
    shutil.copytree(tmp / "head", tmp_path / "head")
    (tmp_path / "head" / "trunk.safetensors").unlink()
    with pytest.raises(ModelError, match="trunk"):
        HeadRewardModel.load(tmp_path / "head", settings.models.cache_dir, device="cpu")


def test_a_text_in_two_sources_is_scored_only_by_the_fold_that_never_trained_on_it():
    # An AlpacaEval answer is also a rated row: the ratings fold trained on the AlpacaEval pairs.
    folds = {"alpacaeval": {"held_quality": {"shared": 0.3, "a": 1.0}, "trained_keys": {"r"}},
             "ratings": {"held_quality": {"shared": 9.0, "r": 2.0}, "trained_keys": {"shared", "a"}}}
    assert merge_out_of_fold(folds) == {"shared": 0.3, "a": 1.0, "r": 2.0}
    folds = {"ratings": folds["ratings"], "alpacaeval": folds["alpacaeval"]}  # order does not matter
    assert merge_out_of_fold(folds)["shared"] == 0.3


def test_train_refuses_a_trunk_directory_without_out_of_fold_scores(tmp_path):
    from mo_explorer.errors import UserError

    with pytest.raises(UserError, match="out_of_fold.npz"):
        train.out_of_fold_quality(str(tmp_path))


def _candidates_file(path) -> None:
    """Answers of growing length to three training-like prompts, as `training.candidates` writes them."""
    from tests.test_training_pipeline import BAD, GOOD

    rows = []
    for i, source in enumerate(("s1", "s2", "ratings")):
        texts = [" ".join([GOOD[(i + j) % len(GOOD)]] * (1 + j)) for j in range(4)] \
            + [" ".join([BAD[(i + j) % len(BAD)]] * (1 + j)) for j in range(4)]
        rows.append({"source": source, "prompt": f"Question number {i}: tell me something useful about topic {i}.",
                     "texts": texts, "mean_logprob": [-1.0 - 0.1 * j for j in range(8)]})
    path.write_text(json.dumps(rows))


def test_with_candidates_no_objective_follows_length_among_the_answers_to_one_prompt(head_with_trunk, tmp_path):
    from mo_explorer.models.head_reward import HeadRewardModel
    from mo_explorer.training.ridge import spearman

    tmp, settings = head_with_trunk
    _candidates_file(tmp_path / "candidates.json")
    saved = json.loads((tmp / "head" / "config.json").read_text())["extra"]["training"]
    parser = argparse.ArgumentParser()
    train.configure(parser)
    args = parser.parse_args([*_args_of(saved["command"]), "--out", str(tmp_path / "head"),
                              "--features", str(tmp / "features"),
                              "--debias-candidates", str(tmp_path / "candidates.json")])
    assert train.main(args, settings) == 0
    cfg = json.loads((tmp_path / "head" / "config.json").read_text())
    debias = cfg["extra"]["training"]["debias"]
    assert {v["on"] for v in debias.values()} == {"generator candidates, within prompts"}
    assert "quality" in debias
    rm = HeadRewardModel.load(tmp_path / "head", settings.models.cache_dir, device="cpu")
    rows = json.loads((tmp_path / "candidates.json").read_text())
    centred, words = [], []
    for row in rows:
        out = rm.score([{"role": "user", "content": row["prompt"]}], row["texts"],
                       mean_logprob=np.array(row["mean_logprob"], np.float32))
        r = out.rewards @ out.transform
        centred.append(r - r.mean(0))
        w = np.log1p([len(t.split()) for t in row["texts"]])
        words.append(w - w.mean())
    centred, words = np.concatenate(centred), np.concatenate(words)
    for j, name in enumerate(rm.objectives):
        if name != "verbosity":
            assert abs(spearman(centred[:, j], words)) <= 0.1, (name, spearman(centred[:, j], words))
    assert "Verbosity debiasing within prompts" in (tmp_path / "head" / "MODEL_CARD.md").read_text()


def test_an_ensemble_of_two_trunks_scores_and_trains_on_the_mean_of_its_members(head_with_trunk, tiny_minilm,
                                                                               tmp_path):
    import shutil

    import torch

    from mo_explorer.errors import UserError
    from mo_explorer.models import trunk as T
    from mo_explorer.models.head_reward import HeadRewardModel
    from mo_explorer.training.card import trunk_command
    from mo_explorer.training.trunk_ensemble import combine

    tmp, settings = head_with_trunk
    first, member = tmp_path / "member-0", tmp_path / "member-1"
    shutil.copytree(tmp / "trunk", first)
    shutil.copytree(tmp / "trunk", member)
    tok, model = T.load_encoder(str(tiny_minilm))
    second, spec = T.load_trunk(member, model)
    T.save_trunk(second, spec, first, report={"config": {"fit_seed": 0, "out": str(first)}})
    torch.manual_seed(7)
    with torch.no_grad():
        second.quality.weight.normal_()
    T.save_trunk(second, spec, member, report={"config": {"fit_seed": 1, "out": str(member)}})
    with np.load(member / "out_of_fold.npz") as z:
        keys = z["keys"]
    np.savez(member / "out_of_fold.npz", keys=keys, quality=np.zeros(len(keys)))
    combine([first, member], tmp_path / "ensemble")

    with np.load(tmp_path / "ensemble" / "out_of_fold.npz") as z:  # members said +-2 and 0: the mean is +-1
        assert sorted(set(np.abs(z["quality"]).round(6))) == [1.0]
    prompt = [{"role": "user", "content": "Question number 3: tell me something useful about topic 3."}]
    texts = ["Paris is the capital of France.", "No.", "The sea and the wind."]
    each = [T.TrunkScorer.load(d, tok, model).encode(prompt, texts)[1] for d in (first, member)]
    both = T.TrunkScorer.load(tmp_path / "ensemble", tok, model).encode(prompt, texts)[1]
    np.testing.assert_allclose(both, np.mean(each, axis=0), rtol=1e-5, atol=1e-5)

    saved = json.loads((tmp / "head" / "config.json").read_text())["extra"]["training"]
    parser = argparse.ArgumentParser()
    train.configure(parser)
    args = parser.parse_args([*_args_of(saved["command"]), "--out", str(tmp_path / "head"),
                              "--features", str(tmp / "features")])
    args.trunk = str(tmp_path / "ensemble")
    assert train.main(args, settings) == 0
    assert (tmp_path / "head" / "trunk-1.safetensors").exists()
    rm = HeadRewardModel.load(tmp_path / "head", settings.models.cache_dir, device="cpu")
    stats = rm.measured["quality"]
    np.testing.assert_allclose(rm.score(prompt, texts).rewards[:, rm.objectives.index("quality")],
                               (both - stats["mean"]) / stats["std"], rtol=1e-4, atol=1e-4)
    lines = trunk_command(tmp_path / "head", saved["command"].replace(str(tmp / "trunk"), "/tmp/ens")).splitlines()
    assert len(lines) == 3 and "--fit-seed 1" in lines[1] and lines[2].endswith("--members /tmp/ens-0 /tmp/ens-1 "
                                                                                 "--out /tmp/ens")

    np.savez(member / "out_of_fold.npz", keys=keys[:3], quality=np.zeros(3))  # scored on other pairs: refused
    with pytest.raises(UserError, match="same pairs"):
        combine([first, member], tmp_path / "other")
