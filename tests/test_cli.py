"""CLI contracts on tiny models: generate's JSON, score's rows, export/import, clear errors."""

from __future__ import annotations

import argparse
import json

import pytest

from mo_explorer.cli import main


@pytest.fixture
def env(monkeypatch, tmp_path, tiny_lm_dir, tiny_classifier_dir):
    monkeypatch.setenv("MO_EXPLORER_GENERATOR", str(tiny_lm_dir))
    monkeypatch.setenv("MO_EXPLORER_REWARD_MODEL", str(tiny_classifier_dir))
    monkeypatch.setenv("MO_EXPLORER_GENERATOR_DTYPE", "float32")
    monkeypatch.setenv("MO_EXPLORER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MO_EXPLORER_DATABASE_PATH", str(tmp_path / "cli.sqlite"))
    return tmp_path


def run_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_generate_prints_the_contract(env, capsys):
    out = run_json(capsys, ["generate", "--prompt", "Say hello", "--n", "3", "--max-new-tokens", "5",
                            "--seed", "1"])
    assert {"session_id", "round_id", "prompt", "objectives", "gating", "candidates", "pareto_front"} <= set(out)
    assert out["objectives"][-2:] == ["length_tokens", "gen_seconds"] and len(out["objectives"]) == 5
    assert len(out["gating"]) == 3 and len(out["candidates"]) == 3
    assert sorted(c["rank"] for c in out["candidates"]) == [0, 1, 2]
    best = min(out["candidates"], key=lambda c: c["rank"])
    assert best["score"] == max(c["score"] for c in out["candidates"])  # no direction: rank by gated score
    assert all(len(c["rewards"]) == 5 for c in out["candidates"]) and out["pareto_front"]

    again = run_json(capsys, ["generate", "--prompt", "Say hello", "--n", "3", "--max-new-tokens", "5",
                              "--seed", "1", "--session", out["session_id"], "--direction", "0,0,0,-1,0"])
    assert [c["text"] for c in again["candidates"]] == [c["text"] for c in out["candidates"]]
    shortest = min(again["candidates"], key=lambda c: c["rank"])
    assert shortest["rewards"][3] == min(c["rewards"][3] for c in again["candidates"])
    assert again["direction"]["weights"] == [0, 0, 0, -1, 0]


def test_generate_steer_writes_a_steered_round_ranked_along_it(env, capsys, monkeypatch):
    monkeypatch.setenv("MO_EXPLORER_STEER_BLOCK", "2")
    out = run_json(capsys, ["generate", "--prompt", "Say hello", "--n", "4", "--max-new-tokens", "6",
                            "--steer", "0,1,0,0,0", "--method", "tchebycheff"])
    steer = {"objectives": ["helpful", "safe", "concise", "length_tokens", "gen_seconds"],
             "weights": [0, 1, 0, 0, 0], "method": "tchebycheff"}
    assert out["mode"] == "steered" and out["params"]["steer"] == steer and out["direction"] == steer
    best = min(out["candidates"], key=lambda c: c["rank"])
    assert best["rewards"][1] == max(c["rewards"][1] for c in out["candidates"])  # ranked along the steer
    assert main(["generate", "--prompt", "hi", "--steer", "1,2"]) == 2
    assert "--steer has 2 weights" in capsys.readouterr().err


def test_generate_refuses_bad_input(env, capsys):
    assert main(["generate", "--prompt", "hi", "--n", "40"]) == 2
    assert "n: Input should be less than or equal to 32" in capsys.readouterr().err
    for flag, value, said in [("--temperature", "nan", "temperature: must be a finite number"),
                              ("--top-p", "inf", "top_p: must be a finite number"),
                              ("--seed", str(10**30), "seed: "), ("--session", "<b>x</b>", "session_id: ")]:
        assert main(["generate", "--prompt", "hi", flag, value]) == 2
        assert said in capsys.readouterr().err
    assert main(["generate", "--prompt", "hi", "--n", "2", "--max-new-tokens", "2", "--direction",
                 "nan,0,0,0,0"]) == 2
    assert "finite" in capsys.readouterr().err
    assert main(["generate", "--prompt", "hi", "--direction", "1,2"]) == 2
    assert "--direction has 2 weights" in capsys.readouterr().err
    assert main(["generate", "--prompt", "hi", "--session", "nope"]) == 2
    assert "unknown session" in capsys.readouterr().err


def test_score_rows(env, capsys):
    src = env / "in.jsonl"
    src.write_text(json.dumps({"prompt": "Hi", "responses": ["Hello!", "Go away."]}) + "\n"
                   + json.dumps({"prompt": [{"role": "user", "content": "2+2?"}], "responses": ["4"]}) + "\n")
    assert main(["score", str(src), "--out", str(env / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (env / "out.jsonl").read_text().splitlines()]
    assert [len(r["score"]) for r in rows] == [2, 1]
    assert rows[0]["objectives"] == ["helpful", "safe", "concise"] and len(rows[0]["rewards"][0]) == 3
    bad = env / "bad.jsonl"
    bad.write_text('{"prompt": "x", "responses": []}\n{"oops": 1}\n')
    assert main(["score", str(bad), "--out", str(env / "o.jsonl")]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err


def test_export_and_import(env, capsys):
    out = run_json(capsys, ["generate", "--prompt", "Say hello", "--n", "2", "--max-new-tokens", "4"])
    path = env / "s.json"
    assert main(["export", out["session_id"], "--format", "json", "--out", str(path)]) == 0
    restored = run_json(capsys, ["import", str(path)])
    assert restored["session_id"] != out["session_id"]
    assert main(["export", "missing-session", "--format", "trl", "--out", str(env / "x")]) == 2
    assert "unknown session" in capsys.readouterr().err
    (env / "broken.json").write_text('{"format": "something-else"}')
    assert main(["import", str(env / "broken.json")]) == 2
    assert "not a mo-explorer session export" in capsys.readouterr().err


def test_help_texts_hold_no_measured_figures():
    """Measurements go stale: they live in the model card and the README, never in --help."""
    import re

    from mo_explorer import cli

    texts = []
    for name in cli.COMMANDS:  # each subcommand's options are built when it is the command (heavy ones lazily)
        parser = cli.make_parser([name])
        (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        texts.append(sub.choices[name].format_help())
    joined = "\n".join(texts)
    assert "--gate-seeds" in joined and "--threads" in joined  # training's options and the settings are read
    figure = re.compile(r"\d+\.\d+ vs \d+\.\d+|\d+(\.\d+)? points|\d+(\.\d+)? ?(ms|s|min) (vs|against)")
    assert not figure.findall(joined)
