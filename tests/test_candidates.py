"""The generator's answers to training prompts that `train --debias-candidates` debiases on: which prompts are
drawn, which a leave-one-source-out fold may use, and a malformed file's error."""

from __future__ import annotations

import pytest

from mo_explorer.errors import UserError
from mo_explorer.training import candidates
from mo_explorer.training import data as D


def _user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_prompts_are_drawn_from_every_source_single_turn_and_reproducibly():
    pairs = [D.PairRow(f"p{i}", subset, _user(f"{subset} question {i}"), "a", "b")
             for subset in ("alpacaeval", "rmb-helpfulness") for i in range(10)]
    pairs.append(D.PairRow("multi", "rmb-helpfulness", [*_user("hi"), {"role": "assistant", "content": "hello"},
                                                        *_user("and then?")], "a", "b"))
    pairs.append(D.PairRow("long", "rmb-helpfulness", _user("x" * (candidates.MAX_PROMPT_CHARS + 1)), "a", "b"))
    ratings = [D.RatingRow(f"r{i}", "xstest-v2-human", _user(f"rated question {i}"), "r") for i in range(5)]
    ratings += [D.RatingRow(f"a{i}", "alpaca_eval-weighted", _user(f"alpaca rated {i}"), "r") for i in range(5)]
    drawn = candidates.sample_prompts(pairs, ratings, per_source=3, seed=0)
    by_source = {s: [p for t, p in drawn if t == s] for s in {t for t, _ in drawn}}
    assert sorted(by_source) == ["alpacaeval", "ratings", "rmb-helpfulness"]
    assert all(len(set(v)) == 3 for v in by_source.values())
    assert all(p.startswith("rated question") for p in by_source["ratings"])  # AlpacaEval's ratings are skipped
    assert not any(p in ("and then?", "hi") or p.startswith("xxx") for _, p in drawn)
    assert candidates.sample_prompts(pairs, ratings, per_source=3, seed=0) == drawn


def test_a_fold_does_not_debias_on_the_prompts_of_the_source_it_leaves_out():
    sources = ["alpacaeval", "rmb-helpfulness", "ratings"]
    assert candidates.kept(sources, None).tolist() == [True, True, True]
    without_alpaca = ("rmb-helpfulness", "ratings-overall", "contrast-x")
    assert candidates.kept(sources, without_alpaca).tolist() == [False, True, True]
    without_ratings = ("alpacaeval", "rmb-helpfulness", "contrast-x")
    assert candidates.kept(sources, without_ratings).tolist() == [True, True, False]


@pytest.mark.parametrize("text", ["", "[]", "{}", '[{"source": "a", "prompt": "p", "texts": ["x"], '
                                                  '"mean_logprob": [-1.0]}]', '[{"prompt": "p"}]'])
def test_a_malformed_candidates_file_is_refused_with_the_command_that_writes_one(tmp_path, text):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(UserError, match="training.candidates"):
        candidates.load(path)
