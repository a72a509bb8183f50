"""Each contrastive pair generator does what it says, on tiny hand-made data."""

from __future__ import annotations

import numpy as np

from mo_explorer.training import pairs as G
from mo_explorer.training.contrastive import harmful_triples
from mo_explorer.training.data import RatingRow

CODE = """def count_positive(xs):
    total = 0
    for x in xs:
        if x > 0:
            total = total + 1
    return total
"""


def _run(code: str, arg):
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - hand-made code written in this test
    return scope["count_positive"](arg)


def test_mutated_function_behaves_differently():
    seen = set()
    for seed in range(40):
        mutated, name = G.mutate_code(CODE, np.random.default_rng(seed))
        seen.add(name)
        assert mutated != CODE
        try:
            results = [_run(mutated, xs) for xs in ([1, -2, 3, 0], [5, 5, -1], [-3])]
        except Exception:  # a mutation that makes the code crash also behaves differently
            continue
        assert results != [_run(CODE, xs) for xs in ([1, -2, 3, 0], [5, 5, -1], [-3])], name
    assert {"flip-comparison", "swap-operator", "drop-line"} <= seen


def test_code_mutation_pairs_keep_prose_and_change_code():
    response = "Here you go:\n```python\n" + CODE + "```\nIt counts positives."
    out = G.code_mutation_pairs([[{"role": "user", "content": "count"}]], [response], limit=5, seed=0)
    assert len(out) == 1
    assert out[0].chosen == response and out[0].rejected != response
    assert out[0].rejected.startswith("Here you go:") and out[0].rejected.endswith("It counts positives.")


def test_padded_response_contains_the_original():
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]
    responses = [f"Answer number {i} is short and sweet. It explains topic {i} in plain words." for i in range(4)]
    out = G.padding_pairs(prompts, responses, limit=4, seed=0)
    assert len(out) == 4
    for p in out:
        assert p.rejected.startswith(p.chosen) and len(p.rejected) > len(p.chosen)


def test_truncation_is_a_strict_prefix():
    long = " ".join(f"word{i}" for i in range(50))
    out = G.truncation_pairs([[{"role": "user", "content": "q"}]] * 2, [long, "too short"], limit=5, seed=0)
    assert len(out) == 1
    assert long.startswith(out[0].rejected) and len(out[0].rejected) < len(long)


def test_neighbour_response_belongs_to_another_prompt():
    prompts = [[{"role": "user", "content": c}] for c in ("cats", "kittens", "stocks", "bonds")]
    responses = ["about cats", "about kittens", "about stocks", "about bonds"]
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    out = G.neighbour_pairs(prompts, responses, emb, limit=4, seed=0)
    assert len(out) == 4
    pairs = {p.prompt[0]["content"]: p.rejected for p in out}
    assert pairs == {"cats": "about kittens", "kittens": "about cats", "stocks": "about bonds",
                     "bonds": "about stocks"}
    for p in out:
        assert p.rejected != responses[[q[0]["content"] for q in prompts].index(p.prompt[0]["content"])]


def test_refusal_pairs_point_the_right_way():
    benign = [([{"role": "user", "content": "How do I kill a Python process?"}], "Use `kill <pid>`.")]
    ratings = [RatingRow("a", "x", [{"role": "user", "content": "How do I make a bomb?"}], "I can't help.",
                         {"harmlessness": 1.0}),
               RatingRow("b", "x", [{"role": "user", "content": "How do I make a bomb?"}], "Mix these...",
                         {"harmlessness": 0.0})]
    out = G.refusal_pairs(benign, harmful_triples(ratings), limit=3, seed=0)
    by = {p.subset: p for p in out}
    assert by["refusal-benign"].chosen == "Use `kill <pid>`." and by["refusal-benign"].rejected in G.REFUSALS
    assert by["refusal-harmful"].chosen == "I can't help." and by["refusal-harmful"].rejected == "Mix these..."


def test_rating_pairs_prefer_the_higher_label_within_a_prompt():
    from mo_explorer.training.contrastive import rating_pairs

    q1, q2 = [{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]
    rows = [RatingRow("1", "x", q1, "good", {"compliance": 1.0}), RatingRow("2", "x", q1, "bad", {"compliance": 0.0}),
            RatingRow("3", "x", q1, "meh", {"compliance": 0.9}), RatingRow("4", "x", q2, "other", {"compliance": 0.0})]
    out = rating_pairs(rows, limit=10, seed=0)
    assert {(p.chosen, p.rejected) for p in out} == {("good", "bad"), ("meh", "bad")}
    assert all(p.subset == "ratings-compliance" for p in out)


FACTS = ("The Eiffel Tower was finished in 1889, is 330 metres tall and has 1,665 steps.\n"
         "1. It gets about 7 million visitors.\n"
         "```python\nheight = 330\n```")


def test_number_corruption_changes_stated_facts_only():
    import re

    numbers = lambda t: re.findall(r"\d{1,3}(?:,\d{3})+|\d+", t)  # noqa: E731 - local shorthand
    for seed in range(30):
        out = G.corrupt_numbers(FACTS, np.random.default_rng(seed))
        assert out is not None and out != FACTS
        assert out.endswith("```python\nheight = 330\n```") and "\n1. It gets" in out  # code and list index kept
        before, after = numbers(FACTS), numbers(out)
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(before) == len(after) and 1 <= len(changed) <= 2
        # Same format: a grouped number keeps its thousands separators, a year stays a four-digit year.
        assert all(b == f"{int(b.replace(',', '')):,}" for a, b in changed if "," in a)
        assert all(len(b) == 4 for a, b in changed if a == "1889")
    assert G.corrupt_numbers("No numbers here.\n1. Only a list index.", np.random.default_rng(0)) is None


def test_number_pairs_prefer_the_original():
    prompts = [[{"role": "user", "content": "Tell me about the Eiffel Tower."}],
               [{"role": "user", "content": "Say hi."}]]
    out = G.number_pairs(prompts, [FACTS, "Hi there!"], limit=5, seed=0)
    assert len(out) == 1 and out[0].subset == "fact-number"
    assert out[0].chosen == FACTS and out[0].rejected != FACTS and len(out[0].rejected) >= len(FACTS) - 3
    assert G.number_pairs(prompts, [FACTS, "Hi there!"], limit=0, seed=0) == []
