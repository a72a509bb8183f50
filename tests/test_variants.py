"""`training.variants` compares recipes on features prepared once: a variant may not change what is prepared."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from mo_explorer.training import train, variants


def config() -> train.TrainConfig:
    parser = argparse.ArgumentParser()
    train.configure(parser)
    return train.TrainConfig.from_args(parser.parse_args(["--ratings", "r.jsonl", "--pairs", "p.jsonl"]))


def test_a_variant_changes_how_the_head_is_fitted():
    variant = variants.variant_config(config(), "--gate-entropy 0.0 --no-verbosity-in-score")
    assert variant.gate_entropy == 0.0 and not variant.verbosity_in_score


@pytest.mark.parametrize("options", ["--backbone /models/bge-small", "--pairs-limit 10", "--layer 3"])
def test_a_variant_that_would_need_other_features_is_refused_not_judged_on_the_first_ones(options):
    with pytest.raises(SystemExit, match="prepared once"):
        variants.variant_config(config(), options)


def test_a_variant_may_drop_the_likelihood_but_not_add_rows_it_was_never_given():
    base = config()
    assert variants.variant_config(base, "--likelihood-pairs 0").likelihood_pairs == 0
    with pytest.raises(SystemExit, match="likelihood_pairs"):
        variants.variant_config(base, f"--likelihood-pairs {base.likelihood_pairs + 1}")
    without = variants.variant_config(base, "--likelihood-pairs 0")
    with pytest.raises(SystemExit, match="likelihood_pairs"):
        variants.variant_config(without, "--likelihood-pairs 800")


def test_a_variant_may_compare_without_the_trunk_but_not_swap_in_another_it_would_be_judged_on_the_first_ones():
    with_trunk = dataclasses.replace(config(), trunk="/tmp/quality-trunk")
    assert not variants.variant_config(with_trunk, "--trunk ''").trunk
    assert variants.variant_config(with_trunk, "--gate-route-weight 0.1").trunk == "/tmp/quality-trunk"
    with pytest.raises(SystemExit, match="trunk"):
        variants.variant_config(with_trunk, "--trunk /tmp/another-trunk")
