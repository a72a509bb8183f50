"""The train command's options: declared once (flag, default, help) and typed once (TrainConfig).

Every command that runs the recipe (train, ablate, ceiling, variants, likelihood_ratio) parses these and builds
the same TrainConfig, as TRL builds its script configs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields

from mo_explorer import config
from mo_explorer.errors import UserError

# Every labelled row of the small objectives (XSTest, Prometheus/Auto-J); AlpacaEval's 12,848 helpfulness rows
# are sampled (its 16 ratings per instruction are near-duplicates for a ridge head).
DEFAULT_PER_OBJECTIVE = {"helpfulness": 600, "overall": 1600, "harmlessness": 1000, "compliance": 1250}


LIKELIHOOD_TOKENS = 128


def likelihood_spec(name: str = "embedded:smollm2", response_tokens: int = LIKELIHOOD_TOKENS) -> dict:
    """FeatureSpec json of the likelihood model: full depth (log-prob), responses cut to `response_tokens`."""
    layers = [9, 15, 30] if name == "embedded:smollm2" else [1]
    return {"name": name, "layers": layers, "pooling": "last", "logprob": True,
            "max_prompt_tokens": 256, "max_response_tokens": response_tokens}


@dataclass(frozen=True)
class TrainConfig:
    """The train command's options, typed and checked once, from the parser (as TRL builds its script configs)."""

    ratings: str
    pairs: str
    backbone: str
    layer: int | None
    out: str
    per_objective: dict[str, int]  # objective -> most rating rows sampled for stage 1
    grouped: tuple[str, ...]
    per_prompt: int
    pairs_limit: int
    contrastive: int
    fact_pairs: int
    rating_pairs: int
    likelihood_pairs: int
    likelihood_contrastive: int
    likelihood_model: str
    likelihood_tokens: int
    verbosity_in_score: bool
    preference_l2: float  # 0: no preference head
    trunk: str | None  # a `training.trunk --out` directory: its quality becomes an objective (None: none)
    gate_steps: int
    gate_layers: int
    gate_seeds: int
    gate_entropy: float
    gate_weighting: str  # "subset" or "source": what weighs the same in the gate's loss
    gate_early_stop: bool  # keep each gate's state with the lowest loss on pairs of held-out prompts
    gate_length_balance: bool  # within each weight group, chosen-longer and chosen-shorter pairs weigh the same
    gate_shrink: float  # weight of the penalty on the gate's departure from the population weighting (KL)
    gate_floor: dict[str, float]  # objective -> share of the weight the gate always gives it
    gate_route: bool  # the gate learns which kind of request a prompt is (stage2.ROUTES), not the pairs' margins
    gate_route_weight: float  # the gate fits the margins, with that cross-entropy added at this weight
    debias_within_pairs: bool  # debias every objective against verbosity on the pairs' differences
    debias_quality: bool  # debias the trunk's quality too (it was trained with a length term of its own)
    debias_candidates: str | None  # a `training.candidates` file: debias within the prompts of the app's generator
    dev: str | None
    dev_limit: int
    features: str | None
    seed: int
    rows_cached_by: str | None
    validate: str  # "none" or "loso"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        """The config of parsed `train` arguments (extra arguments of other commands are ignored)."""
        values = {f.name: getattr(args, f.name) for f in fields(cls)}
        try:
            per_objective = json.loads(values["per_objective"]) if isinstance(values["per_objective"], str) \
                else values["per_objective"]
            assert isinstance(per_objective, dict) and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in per_objective.values())
        except (json.JSONDecodeError, AssertionError):
            raise UserError("--per-objective must be a JSON object of whole row counts, e.g. "
                            '{"overall": 1600}') from None
        values["gate_floor"] = _gate_floor(values.get("gate_floor") or "{}")
        if values["pairs_limit"] <= 0:
            raise UserError("--pairs-limit must be positive")
        return cls(**{**values, "per_objective": dict(per_objective), "grouped": tuple(values["grouped"])})


def _gate_floor(text) -> dict[str, float]:
    """--gate-floor's JSON ({objective: share}) -> dict; shares non-negative and below 1 in all."""
    try:
        floor = json.loads(text) if isinstance(text, str) else dict(text)
        assert isinstance(floor, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                                               for v in floor.values())
        assert sum(floor.values()) < 1
    except (json.JSONDecodeError, AssertionError, TypeError, ValueError):
        raise UserError("--gate-floor must be a JSON object of non-negative shares summing below 1, "
                        'e.g. {"quality": 0.5}') from None
    return {str(k): float(v) for k, v in floor.items()}


def run_likelihood_spec(cfg: TrainConfig) -> dict:
    """The likelihood spec a train/ablate invocation asks for."""
    return likelihood_spec(cfg.likelihood_model, cfg.likelihood_tokens)


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of the train command."""
    parser.add_argument("--ratings", required=True, help="Ratings file (our format or HelpSteer2's columns).")
    parser.add_argument("--pairs", required=True, help="Preference pairs (ours, RewardBench or TRL format).")
    parser.add_argument("--backbone", default="embedded:minilm",
                        help="Feature backbone: embedded:minilm, embedded:smollm2, a Hub id or a local path.")
    parser.add_argument("--layer", type=int, default=None, help="Decoder layer read by the heads (causal LMs).")
    parser.add_argument("--out", default=str(config.EMBEDDED_HEAD_DIR), help="Head directory to write.")
    parser.add_argument("--per-objective", default=json.dumps(DEFAULT_PER_OBJECTIVE),
                        help="JSON {objective: max rating rows} sampled for stage 1.")
    parser.add_argument("--grouped", nargs="*", default=[],
                        help="Objectives sampled as whole prompt groups and regressed on within-prompt differences "
                             "(e.g. helpfulness: AlpacaEval rates 16 responses per instruction).")
    parser.add_argument("--per-prompt", type=int, default=8, help="Responses per prompt group for --grouped.")
    parser.add_argument("--pairs-limit", type=int, default=3000, help="Pairs sampled (stratified by subset).")
    parser.add_argument("--contrastive", type=int, default=100,
                        help="Contrastive pairs per generator (0 disables them).")
    parser.add_argument("--fact-pairs", type=int, default=0,
                        help="Contrastive pairs (with --contrastive > 0) where a response beats itself with a "
                             "stated number changed, scored by the likelihood model too (only it can see the "
                             "change). Off by default (measured worse on dev: see the model card).")
    parser.add_argument("--rating-pairs", type=int, default=600,
                        help="Pairs derived from rated responses to the same prompt (free: no new features).")
    parser.add_argument("--likelihood-pairs", type=int, default=800,
                        help="Pairs also scored by SmolLM2's mean log-prob (0 drops the likelihood objective).")
    parser.add_argument("--likelihood-contrastive", type=int, default=0, choices=(0, 1),
                        help="1: the contrastive pairs are scored by the likelihood model too; 0 (default, "
                             "better on dev, see the model card): only the --likelihood-pairs sampled pairs.")
    parser.add_argument("--likelihood-model", default="embedded:smollm2",
                        help="Causal LM whose mean token log-prob is the likelihood objective (the generator).")
    parser.add_argument("--likelihood-tokens", type=int, default=LIKELIHOOD_TOKENS,
                        help="Response tokens the likelihood model reads (the rest is cut: cost grows with it).")
    parser.add_argument("--verbosity-in-score", action=argparse.BooleanOptionalAction, default=False,
                        help="Let the gate weight verbosity in the score, as far as the training pairs prefer longer "
                             "answers. Off by default since 2026-12-05: verbosity is shown, not rewarded, and the gate "
                             "gives it no weight (with it on, the score was mostly length: length-balanced "
                             "leave-one-source-out table in the model card).")
    parser.add_argument("--debias-within-pairs", action=argparse.BooleanOptionalAction, default=False,
                        help="Debias every objective against verbosity on the training pairs' differences (what a "
                             "pairwise judgement compares), not across all training responses: each objective then "
                             "ranks two answers to one prompt without following their length.")
    parser.add_argument("--debias-quality", action=argparse.BooleanOptionalAction, default=True,
                        help="Debias the trunk's `quality` against verbosity like the other objectives. With "
                             "--no-debias-quality it keeps the trunk's own length control: the trunk is trained "
                             "with a length term that absorbs length within each pair, and debiasing it again over "
                             "all training responses subtracted the length that differs between prompts (within a "
                             "prompt, longer answers then scored lower).")
    parser.add_argument("--debias-candidates", default=None,
                        help="Candidates file written by `python -m mo_explorer.training.candidates`: every "
                             "objective is debiased against verbosity within the prompts of the app's own generator "
                             "(its answers to training prompts), not across all training responses. Overrides "
                             "--debias-within-pairs.")
    parser.add_argument("--preference-l2", type=float, default=0.0,
                        help="Also learn a 'preference' objective: a Bradley-Terry linear head on the training "
                             "pairs' feature differences, with this L2 penalty on standardised features (0: none).")
    parser.add_argument("--trunk", default=None,
                        help="Directory written by `python -m mo_explorer.training.trunk --out`: the trained "
                             "trunk's quality becomes the `quality` objective (the gate learns it on each training "
                             "pair's out-of-fold quality, out_of_fold.npz) and the head directory gets a copy of "
                             "the trunk to score new text.")
    configure_gate(parser)
    parser.add_argument("--dev", default=None, help="Optional pairs file evaluated after training (model card).")
    parser.add_argument("--dev-limit", type=int, default=400, help="Stratified dev sample size.")
    parser.add_argument("--features", default=None,
                        help="Feature cache directory (default <cache-dir>/features); resumable.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of every sample and of the gate.")
    parser.add_argument("--validate", choices=("none", "loso"), default="none",
                        help="loso: also fit the recipe once per training source left out, score that source's "
                             "pairs, and print the table (written to <out>/loso.md); choose recipes by its mean "
                             "and worst column, not by the dev set alone.")
    parser.add_argument("--rows-cached-by", default=None,
                        help="Keep only the sampled rows whose features this backbone already has in the cache "
                             "(no extraction for it): compares backbones on identical rows, or trains on a "
                             "partial extraction.")


def configure_gate(parser: argparse.ArgumentParser) -> None:
    """Arguments of the gate's training (stage 2)."""
    parser.add_argument("--gate-steps", type=int, default=600, help="Gate optimisation steps.")
    parser.add_argument("--gate-layers", type=int, default=2, choices=range(0, 4), metavar="{0,1,2,3}",
                        help="Hidden layers of the gate (256 units each; 0: a linear map from the prompt state to "
                             "the objectives' logits).")
    parser.add_argument("--gate-seeds", type=int, default=5,
                        help="Gates trained with seeds seed, seed + 1, ... and averaged (1: a single gate): one "
                             "gate's accuracy moves with its seed (figures in the model card).")
    parser.add_argument("--gate-entropy", type=float, default=0.2,
                        help="Weight of the gate's entropy bonus (guards against collapse onto one objective).")
    parser.add_argument("--gate-weighting", choices=("subset", "source"), default="subset",
                        help="What weighs the same in the gate's loss: each pair subset (13 in the shipped recipe, "
                             "6 rating pairs weighing as much as 948 RMB pairs), or each source (RMB helpfulness, "
                             "RMB harmlessness, AlpacaEval, the rating pairs, the constructed pairs).")
    parser.add_argument("--gate-early-stop", action=argparse.BooleanOptionalAction, default=True,
                        help="Hold out the pairs of 10%% of the prompts and keep each gate at the step (of "
                             "--gate-steps, checked every 25) with the lowest loss on them: a gate trained on a "
                             "source alone scores below a fixed weighting on held-out prompts (the ceiling table "
                             "in the model card), so it memorises prompts. --no-gate-early-stop: every step, the "
                             "recipe shipped until 2026-11-29.")
    parser.add_argument("--gate-length-balance", action=argparse.BooleanOptionalAction, default=False,
                        help="Within each weight group, the pairs whose chosen answer is the longer and those whose "
                             "chosen answer is the shorter weigh the same in the gate's loss: the gate is trained on "
                             "the length-balanced accuracy it is judged by, and cannot win by following length.")
    parser.add_argument("--gate-floor", default="{}",
                        help='JSON {objective: share}: the gate always gives that objective this share of its '
                             'weight and spreads the rest by the prompt, e.g. {"quality": 0.5} for the trained '
                             "trunk (--trunk), which judges every kind of request.")
    parser.add_argument("--gate-route", action=argparse.BooleanOptionalAction, default=False,
                        help="Train the gate to recognise the kind of request (everyday or task: quality, or "
                             "overall without a trunk; harmful: harmlessness; safe but sounding unsafe: "
                             "compliance; by training subset, stage2.ROUTES) with a cross-entropy loss, rather "
                             "than on the pairs' Bradley-Terry margins.")
    parser.add_argument("--gate-route-weight", type=float, default=0.0,
                        help="Keep fitting the pairs' Bradley-Terry margins, and add --gate-route's cross-entropy "
                             "at this weight: a hint of which objective a kind of request calls for, which the "
                             "margins may overrule.")
    parser.add_argument("--gate-shrink", type=float, default=0.0,
                        help="Weight of the penalty KL(gate(prompt) || mean gate over the batch): the gate keeps "
                             "one population weighting and departs from it only where the pairs pay for it.")
