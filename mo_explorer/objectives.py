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
    "verbosity": "How long the answer is: log(1 + words). The gate weighs it where the training pairs preferred "
                 "fuller answers; the other objectives are debiased against it.",
    "preference": "How likely people (or a judge) prefer this answer: learned from preference pairs directly.",
    "likelihood": "How fluent and plausible the answer is to the generator (its mean token log-probability).",
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
