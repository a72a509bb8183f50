"""Style covariates of a pair's two answers, fitted with a Bradley-Terry score and dropped when it scores.

Length is the first (log words); `markdown` adds the log count of markdown markers (headings, list items, bold).
A length term removes the word count inside a pair but not the style that comes with a longer answer: AlpacaEval's
and RMB helpfulness's judges reward markdown beyond its length (`python -m bench.style_terms`), where RM-Bench chat
does not. A term that absorbs markdown lets the score learn what decides a pair besides layout, as Chatbot Arena's
style control does for its ratings.
"""

from __future__ import annotations

import re

import numpy as np

from mo_explorer.training import data as D
from mo_explorer.training.sources import word_lengths

STYLE_TERMS = ("markdown",)  # beyond length, which is always the first term
MARKER = re.compile(r"\s*(#{1,6}\s|[-*+]\s|\d+[.)]\s)")  # a heading or a list item at the start of a line


def markdown_markers(text: str) -> int:
    """Headings and list items (lines) plus bold spans."""
    return sum(1 for line in text.splitlines() if MARKER.match(line)) + text.count("**") // 2


def log_len_diff(pairs: list[D.PairRow]) -> np.ndarray:
    """log(1 + words chosen) - log(1 + words rejected) (n,): the length term's input."""
    len_c, len_r = word_lengths(pairs)
    return np.log1p(len_c) - np.log1p(len_r)


def style_diffs(pairs: list[D.PairRow], terms: tuple[str, ...] = ()) -> np.ndarray:
    """(n, 1 + len(terms)) chosen-minus-rejected covariates: the log length difference, then each style term's."""
    unknown = set(terms) - set(STYLE_TERMS)
    if unknown:
        raise ValueError(f"unknown style terms {sorted(unknown)}; known: {STYLE_TERMS}")
    columns = [log_len_diff(pairs)]
    if "markdown" in terms:
        columns.append(np.array([np.log1p(markdown_markers(p.chosen)) - np.log1p(markdown_markers(p.rejected))
                                 for p in pairs]))
    return np.stack(columns, axis=1)
