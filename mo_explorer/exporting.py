"""Session exports: TRL preference pairs, the whole session as JSON, candidates as CSV (stdlib only)."""

from __future__ import annotations

import csv
import io
import json

from mo_explorer.errors import UserError
from mo_explorer.schema import Round

SESSION_FORMAT = "mo-explorer-session"


def to_trl(vote_records: list[dict]) -> str:
    """Decisive votes as JSON Lines in TRL's conversational preference format; ties and both-bad are left out.

    Each line: {"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message]}, which
    TRL's DPO and reward trainers load with `datasets.load_dataset("json", data_files=...)`.
    """
    lines = []
    for record in vote_records:
        if record["outcome"] not in ("a", "b"):
            continue
        chosen, rejected = (record["a"], record["b"]) if record["outcome"] == "a" else (record["b"], record["a"])
        lines.append(json.dumps({
            "prompt": record["prompt"],
            "chosen": [{"role": "assistant", "content": chosen["text"]}],
            "rejected": [{"role": "assistant", "content": rejected["text"]}],
        }, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def to_json(session: dict) -> str:
    """The whole session (as returned by Store.export_session) as indented JSON."""
    return json.dumps(session, indent=2, ensure_ascii=False) + "\n"


def parse_json(text: str) -> dict:
    """Parse a 'json' export, refusing anything that is not one with a clear message."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"not a JSON session export: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
        raise UserError(f"not a mo-explorer session export (expected \"format\": \"{SESSION_FORMAT}\")")
    return data


def to_csv(rounds: list[Round]) -> str:
    """One row per candidate: round, prompt, text, gated score and every objective's value."""
    names: list[str] = []
    for rnd in rounds:
        names += [n for n in rnd.objectives if n not in names]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["round_id", "created_at", "prompt", "candidate", "text", "score", *names])
    for rnd in rounds:
        prompt = rnd.prompt[-1]["content"] if rnd.prompt else ""
        for c in rnd.candidates:
            values = dict(zip(rnd.objectives, c.rewards.tolist()))
            writer.writerow([rnd.round_id, rnd.created_at, prompt, c.index, c.text, f"{c.score:.6g}",
                             *[f"{values[n]:.6g}" if n in values else "" for n in names]])
    return buffer.getvalue()
