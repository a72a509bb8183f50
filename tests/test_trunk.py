"""The trained trunk on a tiny BERT: a hidden word decides preference, length is a confounder.

Training pairs: half are decided by the word "good" (in the chosen answer only), with the chosen answer the
longer one in 80% of them; half have no "good" and the longer answer wins 90% of the time. A score that learned
length would fail the held-out pairs where the chosen answer (with "good") is always the shorter one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mo_explorer.models import trunk as T
from mo_explorer.training import data as D
from mo_explorer.training.ridge import spearman
from mo_explorer.training.style import style_diffs
from tests.tiny_bert import save_tiny_bert

FILLERS = [f"w{i}" for i in range(30)]
SPEC = T.TrunkSpec(lower_layers=2, top_layers=2, max_tokens=48, prompt_tokens=4)
PROMPT = [{"role": "user", "content": "question"}]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    directory = save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-trunk"), ["good", "question", *FILLERS], 4, 64)
    return T.load_encoder(str(directory), threads=1)  # the real from_pretrained path


def answer(rng, n_words: int, good: bool) -> str:
    words = list(rng.choice(FILLERS, size=n_words))
    if good:
        words[rng.integers(n_words)] = "good"
    return " ".join(words)


def pair_lengths(rng, chosen_longer: bool) -> tuple[int, int]:
    short, long = int(rng.integers(4, 12)), int(rng.integers(20, 36))
    return (long, short) if chosen_longer else (short, long)


def training_pairs(rng, n: int) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        if i % 2:  # decided by the hidden word; length agrees 80% of the time
            lc, lr = pair_lengths(rng, rng.random() < 0.8)
            out.append((answer(rng, lc, True), answer(rng, lr, False)))
        else:  # no hidden word: the longer answer wins 90% of the time
            lc, lr = pair_lengths(rng, rng.random() < 0.9)
            out.append((answer(rng, lc, False), answer(rng, lr, False)))
    return out


def fit(tiny_bert, pairs, length_term: bool) -> T.Trunk:
    tok, model = tiny_bert
    lower = T.LowerEncoder(model, SPEC)
    chosen = lower.states([T.budgeted_ids(tok, PROMPT, c, SPEC) for c, _ in pairs])
    rejected = lower.states([T.budgeted_ids(tok, PROMPT, r, SPEC) for _, r in pairs])
    assert chosen[0].dtype == np.uint16  # bfloat16 bits, as the cache stores them
    dlen = np.array([np.log1p(len(c.split())) - np.log1p(len(r.split())) for c, r in pairs])
    trunk = T.Trunk.from_encoder(model, SPEC)
    settings = T.FitSettings(steps=300, batch_pairs=16, lr=3e-3, head_lr=1e-2, length_term=length_term)
    T.fit_pairs(trunk, chosen, rejected, dlen, np.ones(len(pairs)), settings)
    return trunk


@pytest.fixture(scope="module")
def trained(tiny_bert):
    pairs = training_pairs(np.random.default_rng(0), 600)
    return {term: fit(tiny_bert, pairs, term) for term in (True, False)}


def held_out(rng, n: int = 100) -> list[tuple[str, str]]:
    """Pairs decided by the hidden word where the chosen answer is always the shorter one."""
    return [(answer(rng, lc, True), answer(rng, lr, False)) for lc, lr in
            (pair_lengths(rng, False) for _ in range(n))]


def test_the_score_recovers_the_hidden_word_and_beta_absorbs_length(tiny_bert, tmp_path, trained):
    trunk = trained[True]
    assert trunk.beta.item() > 0.5  # the length preference of the training pairs went into beta
    T.save_trunk(trunk, SPEC, tmp_path)
    scorer = T.TrunkScorer.load(tmp_path, *tiny_bert)  # the shipped path: safetensors + the loaded encoder
    from safetensors import safe_open
    with safe_open(str(tmp_path / T.WEIGHTS_FILE), "pt") as f:  # stored in bf16: a Space takes files under 10 MB
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    pairs = held_out(np.random.default_rng(1))
    in_memory = T.TrunkScorer(trunk, SPEC, *tiny_bert).encode(PROMPT, [c for c, _ in pairs])[1]
    assert np.corrcoef(in_memory, scorer.encode(PROMPT, [c for c, _ in pairs])[1])[0, 1] > 0.999
    _, qc = scorer.encode(PROMPT, [c for c, _ in pairs])
    _, qr = scorer.encode(PROMPT, [r for _, r in pairs])
    assert np.mean(qc > qr) >= 0.9
    # Among answers without the word, the score barely follows length: beta took it.
    rng = np.random.default_rng(2)
    plain = [answer(rng, int(n), False) for n in rng.integers(4, 36, size=80)]
    _, q = scorer.encode(PROMPT, plain)
    assert abs(spearman(q, np.array([len(a.split()) for a in plain]))) < 0.5


def test_without_the_length_term_the_score_learns_length(tiny_bert, trained):
    trunk = trained[False]
    assert trunk.beta.item() == 0.0
    scorer = T.TrunkScorer(trunk, SPEC, *tiny_bert)
    rng = np.random.default_rng(2)
    plain = [answer(rng, int(n), False) for n in rng.integers(4, 36, size=80)]
    _, q = scorer.encode(PROMPT, plain)
    with_term = T.TrunkScorer(trained[True], SPEC, *tiny_bert).encode(PROMPT, plain)[1]
    lengths = np.array([len(a.split()) for a in plain])
    assert spearman(q, lengths) > abs(spearman(with_term, lengths)) + 0.2


def as_list(text: str) -> str:
    """The text as three markdown list items, "-" taking the place of each item's first word so that the word count
    stays (the tiny vocabulary reads "-" as [UNK]: still a token the trunk sees)."""
    words = text.split()
    third = max(2, len(words) // 3)
    return "\n".join("- " + " ".join(words[i + 1:i + third]) for i in range(0, len(words), third))


def styled_pairs(rng, n: int) -> list[D.PairRow]:
    """Half decided by "good" (each side a list or not at random); half without it, where the list wins 90% of the
    time. Both sides of a pair have the same words' count, so only the markdown term can take the style."""
    out = []
    for i in range(n):
        k = int(rng.integers(8, 20))
        good = bool(i % 2)
        c, r = answer(rng, k, good), answer(rng, k, False)
        if good:
            c, r = (as_list(c) if rng.random() < 0.5 else c), (as_list(r) if rng.random() < 0.5 else r)
        elif rng.random() < 0.9:
            c = as_list(c)
        else:
            r = as_list(r)
        out.append(D.PairRow(id=str(i), subset="t", prompt=PROMPT, chosen=c, rejected=r))
    return out


def test_a_markdown_term_takes_the_judges_taste_for_lists_out_of_the_score(tiny_bert):
    """"Two equally good answers, one laid out as a list: the score does not prefer the list" -- where the training
    judge did (90%), and a trunk without the term learned to."""
    tok, model = tiny_bert
    lower = T.LowerEncoder(model, SPEC)
    train = styled_pairs(np.random.default_rng(3), 600)
    chosen = lower.states([T.budgeted_ids(tok, PROMPT, p.chosen, SPEC) for p in train])
    rejected = lower.states([T.budgeted_ids(tok, PROMPT, p.rejected, SPEC) for p in train])
    settings = T.FitSettings(steps=300, batch_pairs=16, lr=3e-3, head_lr=1e-2)
    prefers_lists, finds_good = {}, {}
    rng = np.random.default_rng(4)
    plain = [answer(rng, int(k), False) for k in rng.integers(8, 20, size=80)]
    good_plain = [answer(rng, len(a.split()), True) for a in plain]
    for terms in ((), ("markdown",)):
        x = style_diffs(train, terms)
        trunk = T.Trunk.from_encoder(model, SPEC, style_terms=x.shape[1])
        T.fit_pairs(trunk, chosen, rejected, x, np.ones(len(train)), settings)
        scorer = T.TrunkScorer(trunk, SPEC, tok, model)
        q_plain, q_list = (scorer.encode(PROMPT, texts)[1] for texts in (plain, [as_list(a) for a in plain]))
        prefers_lists[terms] = float(np.mean(q_list > q_plain))
        q_good = scorer.encode(PROMPT, good_plain)[1]
        finds_good[terms] = float(np.mean(q_good > q_list))  # a plain answer with the word over a list without it
        if terms:
            assert trunk.beta[1].item() > 0.5  # the judge's taste for lists went into the markdown term
    assert prefers_lists[()] >= 0.9
    assert prefers_lists[("markdown",)] <= prefers_lists[()] - 0.15
    assert finds_good[("markdown",)] >= max(0.9, finds_good[()])


def test_train_subsets_keep_other_sources_out_of_the_trunk_but_every_fold_is_scored():
    from mo_explorer.training.data import PairRow
    from mo_explorer.training.trunk import split

    def pair(i, subset):
        return PairRow(f"{subset}/{i}", subset, [{"role": "user", "content": f"q{i}"}], "a", "b")

    pairs = [pair(i, s) for i, s in enumerate(["rmb-helpfulness", "rmb-harmlessness", "alpacaeval",
                                               "ratings-compliance", "ratings-overall"] * 2)]
    quality_only = ("rmb-helpfulness", "alpacaeval", "ratings-overall")
    train, held = split(pairs, "rmb-harmlessness", quality_only)
    assert {p.subset for p in train} == set(quality_only) and {p.subset for p in held} == {"rmb-harmlessness"}
    train, held = split(pairs, "ratings", quality_only)
    assert {p.subset for p in train} == {"rmb-helpfulness", "alpacaeval"}
    assert {p.subset for p in held} == {"ratings-compliance", "ratings-overall"}  # scored, though never trained on
    assert {p.subset for p in split(pairs, "ratings")[0]} == {"rmb-helpfulness", "rmb-harmlessness", "alpacaeval"}


def test_length_match_lets_pairs_of_near_equal_length_teach_most_and_keeps_every_balance():
    from mo_explorer.training.data import PairRow
    from mo_explorer.training.trunk import pair_weights

    def pair(i, subset, chosen_words, rejected_words):
        return PairRow(f"{subset}/{i}", subset, [{"role": "user", "content": f"q{i}"}],
                       " ".join(["w"] * chosen_words), " ".join(["w"] * rejected_words))

    # AlpacaEval as it is: the chosen answer mostly much longer; RMB helpfulness: lengths close either way
    pairs = ([pair(i, "alpacaeval", 300, 60) for i in range(8)] + [pair(8, "alpacaeval", 110, 100),
                                                                    pair(9, "alpacaeval", 50, 55)]
             + [pair(10 + i, "rmb-helpfulness", 100 + 5 * i, 100 - 5 * i) for i in range(1, 4)]
             + [pair(20 + i, "rmb-helpfulness", 100 - 5 * i, 100 + 5 * i) for i in range(1, 4)])
    plain, matched = pair_weights(pairs), pair_weights(pairs, length_match=0.35)
    alpaca = np.arange(10)
    for w in (plain, matched):  # each source weighs the same, and in it the chosen-longer and -shorter halves
        assert w[alpaca].sum() == pytest.approx(w[10:].sum())
        assert w[:9].sum() == pytest.approx(w[9])
    # without the kernel the eight long-against-short pairs carry most of the longer half; with it the near-equal one
    assert plain[8] / plain[0] == pytest.approx(1.0)
    assert matched[8] / matched[0] > 50
    assert matched[8] > matched[:8].sum()


def test_extra_pairs_add_training_subsets_only_and_keep_the_sample_train_draws(tmp_path):
    import gzip
    import json

    from mo_explorer.training.data import read_pairs, stratified_sample
    from mo_explorer.training.trunk import TrunkRunConfig, make_parser, sample_pairs

    rows = [{"id": f"{s}/{i}", "source": s, "subset": s, "prompt": [{"role": "user", "content": f"q{i}"}],
             "chosen": f"a{i}", "rejected": f"b{i}"}
            for s in ("rmb-helpfulness", "rmb-harmlessness", "alpacaeval") for i in range(40)]
    pairs_path, ratings_path = tmp_path / "pairs.jsonl.gz", tmp_path / "ratings.jsonl.gz"
    with gzip.open(pairs_path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    with gzip.open(ratings_path, "wt") as f:
        f.write(json.dumps({"id": "r/0", "source": "r", "prompt": [{"role": "user", "content": "q"}],
                            "response": "a", "helpfulness": 0.5}) + "\n")

    def sampled(extra: int, *more: str) -> list:
        args = make_parser().parse_args(["--pairs", str(pairs_path), "--ratings", str(ratings_path),
                                         "--pairs-limit", "30", "--extra-pairs", str(extra), "--rating-pairs", "0",
                                         "--train-subsets", "rmb-helpfulness", "alpacaeval", *more])
        return sample_pairs(TrunkRunConfig.from_args(args))[0]

    every = read_pairs(str(pairs_path))
    as_train_draws = [every[i].id for i in stratified_sample([p.subset for p in every], 30, 0)]
    with_extra = sampled(20)
    assert [p.id for p in sampled(0)] == as_train_draws == [p.id for p in with_extra[:30]]
    extra = with_extra[30:]
    assert len(extra) == 20 and {p.subset for p in extra} == {"rmb-helpfulness", "alpacaeval"}
    assert len({p.id for p in with_extra}) == 50  # no pair drawn twice
    # another member of an ensemble: another fit seed, the very same pairs (so the same out-of-fold keys)
    assert [p.id for p in sampled(20, "--fit-seed", "1")] == [p.id for p in with_extra]


def test_code_pairs_teach_correct_over_mutated_code_only_where_the_trunk_sees_it_and_respect_the_folds():
    from mo_explorer.training.data import PairRow
    from mo_explorer.training.trunk import CODE_SUBSET, code_origin, code_pairs, split, visible_code_pairs

    code = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\n"
    late = "word " * 300 + code  # the block lies past any window the trunk reads

    def pair(i, subset, chosen):
        return PairRow(f"{subset}/{i}", subset, [{"role": "user", "content": f"q{i}"}], chosen, "no")

    rows = [pair(0, "rmb-helpfulness", code), pair(1, "alpacaeval", code), pair(2, "alpacaeval", late),
            pair(3, "rmb-harmlessness", code), pair(4, "alpacaeval", "no code here")]
    made = code_pairs(rows, ("rmb-helpfulness", "alpacaeval"), 10, seed=0)
    assert {p.subset for p in made} == {CODE_SUBSET} and len(made) == 3  # not from harmlessness, nor without code
    assert all(p.chosen != p.rejected and "```" in p.rejected for p in made)
    assert sorted(code_origin(p) for p in made) == ["alpacaeval", "alpacaeval", "rmb-helpfulness"]

    def window(prompt, text):  # a stand-in for the budgeted token ids: the first 40 words
        return text.split()[:40]

    seen = visible_code_pairs(rows + made, window, limit=10)
    assert [p for p in seen if p.subset == CODE_SUBSET] == [p for p in made if p.chosen != late]
    assert len([p for p in visible_code_pairs(rows + made, window, limit=1) if p.subset == CODE_SUBSET]) == 1

    train, held = split(rows + made, "alpacaeval", ("rmb-helpfulness", "alpacaeval"))
    assert [code_origin(p) for p in train if p.subset == CODE_SUBSET] == ["rmb-helpfulness"]  # no leak of the fold
    assert CODE_SUBSET not in {p.subset for p in held}


def test_top_layers_choose_which_of_minilms_six_layers_train_and_which_are_cached():
    from mo_explorer.training.trunk import TrunkRunConfig, make_parser, trunk_spec

    def spec(*more: str):
        args = make_parser().parse_args(["--pairs", "p", "--ratings", "r", *more])
        return trunk_spec(TrunkRunConfig.from_args(args))

    assert (spec().lower_layers, spec().top_layers) == (4, 2)  # the shipped trunk: layers 5-6 on cached layer 4
    assert (spec("--top-layers", "4").lower_layers, spec("--top-layers", "4").top_layers) == (2, 4)
    with pytest.raises(SystemExit):
        spec("--top-layers", "7")


def test_a_trunk_over_the_file_limit_is_cut_into_parts_that_load_back_to_the_same_scores(tiny_bert, tmp_path,
                                                                                         trained):
    trunk = trained[True]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    T.save_trunk(trunk, SPEC, whole)
    limit = (whole / T.WEIGHTS_FILE).stat().st_size // 4
    T.save_trunk(trunk, SPEC, cut, max_file_bytes=limit)  # a quarter of the whole: several parts
    assert T.trunk_files(whole) == [whole / T.WEIGHTS_FILE]
    files = T.trunk_files(cut)
    assert len(files) > 2 and T.member_files(cut) == [cut / T.WEIGHTS_FILE]  # parts are not ensemble members
    answers = [answer(np.random.default_rng(3), 12, good) for good in (True, False, True, False)]
    expected = T.TrunkScorer.load(whole, *tiny_bert).encode(PROMPT, answers)[1]
    np.testing.assert_array_equal(T.TrunkScorer.load(cut, *tiny_bert).encode(PROMPT, answers)[1], expected)
    T.save_trunk(trunk, SPEC, cut)  # saved again whole: the old parts go, nothing stale is left to load
    assert T.trunk_files(cut) == [cut / T.WEIGHTS_FILE]
    T.save_trunk(trunk, SPEC, cut, max_file_bytes=limit)
    (cut / T.PART_FILE.format("trunk", 1)).unlink()
    with pytest.raises(ValueError, match="missing"):
        T.TrunkScorer.load(cut, *tiny_bert)


def test_an_ensemble_of_trunks_that_train_different_layers_scores_the_mean_of_what_each_scores_alone(
        tiny_bert, tmp_path, trained):
    from mo_explorer.errors import UserError
    from mo_explorer.training.trunk_ensemble import combine

    tok, model = tiny_bert
    deep_spec = T.TrunkSpec(lower_layers=1, top_layers=3, max_tokens=SPEC.max_tokens, prompt_tokens=SPEC.prompt_tokens)
    deep = T.Trunk.from_encoder(model, deep_spec)
    torch.manual_seed(5)
    with torch.no_grad():
        deep.quality.weight.normal_()
    two, three = tmp_path / "two-layers", tmp_path / "three-layers"
    T.save_trunk(trained[True], SPEC, two)
    limit = (two / T.WEIGHTS_FILE).stat().st_size // 2
    T.save_trunk(deep, deep_spec, three, max_file_bytes=limit)  # cut into parts, as a four-layer MiniLM trunk is
    for d, q in ((two, 1.0), (three, 3.0)):
        np.savez(d / "out_of_fold.npz", keys=np.array(["a", "b"]), quality=np.array([q, -q]))
    combine([two, three], tmp_path / "both")

    answers = [answer(np.random.default_rng(4), 10, good) for good in (True, False, True)]
    alone = [T.TrunkScorer.load(d, tok, model).encode(PROMPT, answers)[1] for d in (two, three)]
    assert not np.allclose(alone[0], alone[1])
    both = T.TrunkScorer.load(tmp_path / "both", tok, model)
    assert both.spec == deep_spec  # handed the states of the lowest member's cache (layer 1)
    np.testing.assert_allclose(both.encode(PROMPT, answers)[1], np.mean(alone, axis=0), rtol=1e-5, atol=1e-5)
    with np.load(tmp_path / "both" / "out_of_fold.npz") as z:
        np.testing.assert_allclose(z["quality"], [2.0, -2.0])
    assert len(T.member_files(tmp_path / "both")) == 2 and len(T.trunk_files(tmp_path / "both")) > 2

    other = tmp_path / "other-tokens"
    T.save_trunk(deep, T.TrunkSpec(1, 3, SPEC.max_tokens + 8, SPEC.prompt_tokens), other)
    np.savez(other / "out_of_fold.npz", keys=np.array(["a", "b"]), quality=np.array([0.0, 0.0]))
    with pytest.raises(UserError, match="different tokens"):
        combine([two, other], tmp_path / "refused")
