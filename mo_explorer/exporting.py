"""Session exports: TRL preference pairs, the whole session as JSON, candidates as CSV (stdlib only)."""

from __future__ import annotations

import csv
import io
import json

from mo_explorer.schema import Round


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


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """Text for a CSV cell that a spreadsheet shows as text: a leading quote defuses a would-be formula."""
    # OWASP's advice for CSV injection: Excel, LibreOffice and Sheets run a cell starting with one of these.
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def to_csv(rounds: list[Round]) -> str:
    """One row per candidate: round, prompt, text, gated score, every objective's value, and how the round was
    written (mode 'plain' or 'steered', and the steering direction as JSON)."""
    names: list[str] = []
    for rnd in rounds:
        names += [n for n in rnd.objectives if n not in names]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["round_id", "created_at", "prompt", "candidate", "text", "score", *map(text_cell, names),
                     "mode", "steer"])
    for rnd in rounds:
        prompt = rnd.prompt[-1]["content"] if rnd.prompt else ""
        for c in rnd.candidates:
            values = dict(zip(rnd.objectives, c.rewards.tolist()))
            # Only text is escaped: the numbers are written by this function and a "-" there is a minus sign.
            writer.writerow([text_cell(rnd.round_id), rnd.created_at, text_cell(prompt), c.index, text_cell(c.text),
                             f"{c.score:.6g}",
                             *[f"{values[n]:.6g}" if n in values else "" for n in names], rnd.params.mode,
                             text_cell(json.dumps(rnd.params.steer.to_dict())) if rnd.params.steer else ""])
    return buffer.getvalue()
