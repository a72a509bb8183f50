"""What each objective means, in one line a person can read on hover: from the reward models' cards.

Plain data, no imports: the plot, the cards and the comparison all read it. An objective this table does
not know is shown by its name alone.
"""

from __future__ import annotations

SCORE_LABEL = "reward model's score"

MEANINGS = {
    # the embedded head (data/reward_head/MODEL_CARD.md)
    "helpfulness": "How likely a strong judge prefers this answer to GPT-4-turbo's (AlpacaEval 2.0).",
    "overall": "Overall quality as GPT-4 rubrics rate it (Prometheus, Auto-J).",
    "harmlessness": "Refuses clearly unsafe requests (1 = a full refusal of an unsafe prompt).",
    "compliance": "Answers safe requests instead of over-refusing them.",
    "verbosity": "How long the answer is: log(1 + words). Shown, not rewarded: the gate gives it no weight, the "
                 "ridge objectives are debiased against it and `quality` is trained with a length term that absorbs "
                 "it. Point the arrow at it to ask for longer answers.",
    "preference": "How likely people (or a judge) prefer this answer: learned from preference pairs directly.",
    "likelihood": "How fluent and plausible the answer is to the generator (its mean token log-probability).",
    "quality": "How good an answer to an ordinary request is, beyond its length: MiniLM's top layers fine-tuned on "
               "preference pairs of everyday and task requests (never on harmful ones).",
    # measured while generating: costs, lower is better
    "length_tokens": "A cost: how many tokens the answer took (fewer is cheaper to read and to generate).",
    "gen_seconds": "A cost: seconds until this answer finished generating (lower is faster).",
    "mean_logprob": "The generator's mean token log-probability of the answer.",
    # ArmoRM-Llama3-8B-v0.1's objectives (its model card)
    "helpsteer-helpfulness": "HelpSteer: how well the answer meets the request.",
    "helpsteer-correctness": "HelpSteer: factual accuracy of the answer.",
    "helpsteer-coherence": "HelpSteer: clarity and consistency of the answer.",
    "helpsteer-complexity": "HelpSteer: the expertise needed to write the answer.",
    "helpsteer-verbosity": "HelpSteer: the amount of detail relative to what was asked.",
    "ultrafeedback-overall_score": "UltraFeedback: overall score.",
    "ultrafeedback-instruction_following": "UltraFeedback: follows the instructions.",
    "ultrafeedback-truthfulness": "UltraFeedback: free of made-up facts.",
    "ultrafeedback-honesty": "UltraFeedback: honest about what it does not know.",
    "ultrafeedback-helpfulness": "UltraFeedback: helpful and informative.",
    "beavertails-is_safe": "BeaverTails: the answer is safe.",
    "prometheus-score": "Prometheus: overall quality by a GPT-4 rubric.",
    "argilla-overall_quality": "Argilla: overall quality.",
    "argilla-judge_lm": "Argilla: an LLM judge's rating.",
    "code-complexity": "Code: complexity of the code in the answer.",
    "code-style": "Code: readability and style.",
    "code-explanation": "Code: how well the code is explained.",
    "code-instruction-following": "Code: follows the coding instructions.",
    "code-readability": "Code: readability.",
}


def meaning(name: str) -> str:
    """The one-line meaning of an objective, or "" when unknown."""
    return MEANINGS.get(name, "")


def label(name: str, score_column: str = "score") -> str:
    """How a plot column is named on the page (the reward model's own score gets words, not a field name)."""
    return SCORE_LABEL if name == score_column else name


WEAK_BELOW = 0.55  # length-balanced held-out accuracy under which an objective is called a weak signal
MEASURED = ("verbosity", "length_tokens", "gen_seconds", "mean_logprob")  # measured, not judged: no accuracy


def trust_note(name: str, trust: dict | None) -> str:
    """How far an objective is to be trusted, in a few words, from the reward model's held-out table (trust:
    {"objectives": {name: length-balanced accuracy}}); "" when the model reports nothing for it."""
    if name in MEASURED:
        return "measured, not judged"
    acc = ((trust or {}).get("objectives") or {}).get(name)
    if acc is None or acc != acc:
        return ""
    words = f"{100 * acc:.0f}% right on held-out pairs, length-balanced"
    return f"weak signal: {words}" if acc < WEAK_BELOW else words


def menu_label(name: str, score_column: str = "score", trust: dict | None = None) -> str:
    """An axis menu entry: the objective's label, with its held-out accuracy (or "weak signal") beside it."""
    base = label(name, score_column)
    if name == score_column:
        acc = ((trust or {}).get("score") or {}).get("balanced_mean")
        return base if acc is None else f"{base} ({100 * acc:.0f}% held-out)"
    if name in MEASURED:
        return base
    acc = ((trust or {}).get("objectives") or {}).get(name)
    if acc is None or acc != acc:
        return base
    return f"{base} ({'weak, ' if acc < WEAK_BELOW else ''}{100 * acc:.0f}% held-out)"


def trust_line(trust: dict | None) -> str:
    """One line for the page: how far the reward model's score is to be trusted ("" when it reports nothing)."""
    score = (trust or {}).get("score") or {}
    if "balanced_mean" not in score:
        return ""
    weak = [n for n, a in ((trust or {}).get("objectives") or {}).items()
            if n not in MEASURED and a == a and a < WEAK_BELOW]
    line = (f"**How far to trust the score:** on preference pairs from sources it never trained on, it picks the "
            f"preferred answer {100 * score['balanced_mean']:.0f}% of the time once answer length is balanced out "
            f"(chance is 50%; worst source {100 * score['balanced_worst']:.0f}%). A helper for exploring, not a judge.")
    if weak:
        line += f" Weak signals: {', '.join(weak)}."
    return line
