"""Pairs readers for the three formats and clear errors on malformed rows."""

from __future__ import annotations

import json

import pytest

from mo_explorer.errors import UserError
from mo_explorer.training.data import read_pairs, read_ratings

OURS = {"id": "1", "subset": "chat", "prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello!",
        "rejected": "Go away."}
REWARDBENCH = {"id": 7, "subset": "chat-hard", "prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}
TRL_EXPLICIT = {"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello!"}],
                "rejected": [{"role": "assistant", "content": "Go away."}]}
TRL_IMPLICIT = {"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
                "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]}


def _write(path, rows, raw_lines=()):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(raw_lines))
    return path


@pytest.mark.parametrize("row", [OURS, REWARDBENCH, TRL_EXPLICIT, TRL_IMPLICIT])
def test_every_format_reads_to_the_same_pair(tmp_path, row):
    (pair,) = read_pairs(_write(tmp_path / "p.jsonl", [row]))
    assert pair.prompt == [{"role": "user", "content": "Hi"}]
    assert (pair.chosen, pair.rejected) == ("Hello!", "Go away.")


def test_malformed_line_error_names_the_line(tmp_path):
    path = _write(tmp_path / "p.jsonl", [OURS, OURS], ["{not json\n"])
    with pytest.raises(UserError, match=r"p\.jsonl:3: not valid JSON"):
        read_pairs(path)
    path = _write(tmp_path / "q.jsonl", [OURS, {"prompt": "x", "chosen": "y"}])
    with pytest.raises(UserError, match=r"q\.jsonl:2: missing 'rejected'"):
        read_pairs(path)


def test_helpsteer2_columns_are_rescaled(tmp_path):
    row = {"prompt": "Hi", "response": "Hello", "helpfulness": 4, "correctness": 2, "coherence": 4,
           "complexity": 0, "verbosity": 1}
    (r,) = read_ratings(_write(tmp_path / "hs2.jsonl", [row]))
    assert r.labels == {"helpfulness": 1.0, "correctness": 0.5, "coherence": 1.0, "complexity": 0.0,
                        "verbosity": 0.25}
    with pytest.raises(UserError, match=r"bad\.jsonl:1: 'overall' must be a number"):
        read_ratings(_write(tmp_path / "bad.jsonl", [{"prompt": [{"role": "user", "content": "x"}],
                                                      "response": "y", "overall": "high"}]))
