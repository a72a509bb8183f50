"""Untrusted model output is shown as text: raw HTML escaped before Markdown, code left readable."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mo_explorer.schema import Direction
from mo_explorer.ui import render
from tests.ui_support import synthetic_round

ATTACKS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<iframe src=javascript:alert(1)>",
           "</div><svg onload=alert(1)>", "<a href='javascript:alert(1)'>x</a>"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_raw_html_is_escaped(attack):
    out = render.safe_markdown(f"Sure!\n\n{attack}\n\nmore text")
    assert "<" not in out and ">" not in out
    assert "&lt;" in out


def test_code_is_kept_verbatim_and_prose_around_it_escaped():
    text = ("Use `a < b` here <b>bold</b>\n```python\nif a < b and c > d:\n    print('<ok>')\n```\n"
            "after <script>x</script>\n")
    out = render.safe_markdown(text)
    assert "`a < b`" in out and "if a < b and c > d:" in out and "print('<ok>')" in out
    assert "&lt;b&gt;bold&lt;/b&gt;" in out and "after &lt;script&gt;" in out


def test_unclosed_fence_and_unmatched_backticks():
    assert render.safe_markdown("``` \n<x>") == "``` \n<x>"  # an unclosed fence runs to the end: all code
    assert render.safe_markdown("a ` <b> ``") == "a ` &lt;b&gt; ``"
    assert render.safe_markdown("~~~\n<x>\n~~~\n<y>") == "~~~\n<x>\n~~~\n&lt;y&gt;"
    assert render.safe_markdown("a & b") == "a &amp; b"


def test_response_markdown_shows_full_text_and_rewards():
    long = "word " * 200 + "<script>end</script>"
    rnd = synthetic_round(np.ones((2, 5)), texts=["short", long])
    md = render.response_markdown(rnd, 1)
    assert "### Candidate #1" in md and "word " * 200 in md and "<script" not in md
    assert "Say &lt;b&gt;hi&lt;/b&gt;" in md  # the prompt is user text, escaped too
    assert "| helpful | 1 |" in md
    assert "not in this round" in render.response_markdown(rnd, 7)


def test_default_axes_and_labels():
    rnd = synthetic_round(np.ones((2, 5)))
    assert render.default_axes(rnd) == ("helpful", "safe")
    assert render.default_axes(rnd, "score", "gen_seconds") == ("score", "gen_seconds")
    assert render.default_axes(rnd, "score", "score") == ("helpful", "safe")
    one = synthetic_round(np.ones((2, 3)), names=("overall", "length_tokens", "gen_seconds"),
                          maximize=(True, True, False), k_model=1)
    assert render.default_axes(one) == ("overall", "length_tokens")
    assert "Say <b>hi</b>" in render.round_label(rnd)  # a dropdown label is text, not HTML
    assert render.direction_label(Direction(("a", "b"), (3.0, -4.0))) == "linear: a +0.60, b -0.80"
    assert len(render.load_examples()) >= 5


def test_the_web_layer_imports_no_model_code_and_builds_nothing():
    code = ("import sys, mo_explorer.ui.app, mo_explorer.ui.render; "
            "print('torch' in sys.modules, 'transformers' in sys.modules, 'sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_front_volumes_put_a_sessions_rounds_on_one_scale_and_the_round_list_shows_them():
    import numpy as np

    from tests.ui_support import synthetic_round

    low = synthetic_round(np.array([[0.1, 0.2, 0.1, 10, 1.0], [0.2, 0.1, 0.2, 20, 2.0]]))
    high = synthetic_round(np.array([[0.9, 0.5, 0.8, 10, 1.0], [0.5, 0.9, 0.9, 20, 2.0]]))
    high = high.__class__(**{**high.__dict__, "round_id": "r2"})
    volumes = render.front_volumes([low, high])
    assert 0.0 < volumes["r1"] < volumes["r2"] <= 1.0
    assert f"front {volumes['r2']:.3f}" in render.round_label(high, volumes["r2"])
    assert render.front_summary(high, volumes) == {"hypervolume": volumes["r2"], "best": volumes["r2"], "rounds": 2}
