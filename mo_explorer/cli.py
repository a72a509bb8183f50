"""`python -m mo_explorer`: serve | generate | score | train | eval | export | import | sessions.

Each subcommand is `configure(parser)` + a handler taking (args, settings); heavy imports happen inside handlers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from mo_explorer import ranking, summary, validation
from mo_explorer.config import Settings, add_settings_arguments
from mo_explorer.errors import UserError
from mo_explorer.schema import MEASURED_LENGTH, MEASURED_LOGPROB, MEASURED_TIME, Direction

log = logging.getLogger("mo_explorer")


def _explorer(settings: Settings, generator: bool = True, reward_model: bool = True):
    from mo_explorer.explorer import Explorer

    return Explorer.from_settings(settings, generator=generator, reward_model=reward_model)


def _storage(settings: Settings):
    from mo_explorer.explorer import Explorer

    return Explorer.storage_only(settings)


def _parse_direction(text: str | None, objectives: tuple[str, ...]) -> Direction | None:
    if not text:
        return None
    try:
        weights = tuple(float(w) for w in text.split(","))
    except ValueError as exc:
        raise UserError(f"--direction must be comma-separated numbers, got {text!r}") from exc
    if len(weights) != len(objectives):
        raise UserError(f"--direction has {len(weights)} weights but there are {len(objectives)} objectives "
                        f"({', '.join(objectives)}), in that order")
    return validation.direction(list(objectives), list(weights))


def configure_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", required=True, help="User prompt text.")
    p.add_argument("--n", type=int, default=None, help="Number of candidates (default: settings).")
    p.add_argument("--max-new-tokens", type=int, default=None, help="New tokens per candidate.")
    p.add_argument("--temperature", type=float, default=None, help="Sampling temperature (0 = greedy).")
    p.add_argument("--top-p", type=float, default=None, help="Nucleus sampling top-p.")
    p.add_argument("--seed", type=int, default=0, help="Sampling seed: same seed, same candidates.")
    p.add_argument("--direction", default=None,
                   help="Comma-separated weights over the output's objectives, in its order; ranks by it.")
    p.add_argument("--steer", default=None,
                   help="Write the round along this direction (a steered round): weights as for --direction, "
                        "in the same order; ranks by it unless --direction is given.")
    p.add_argument("--method", choices=("linear", "tchebycheff"), default="linear",
                   help="Scalarisation (of --direction and --steer).")
    p.add_argument("--session", default=None, help="Add the round to this session (default: a new one).")


def run_generate(args, settings: Settings) -> int:
    d = settings.defaults
    # Checked before the models load: a typo costs nothing, and nothing unchecked reaches the core.
    request = validation.check(
        validation.GenerateRequest, prompt=args.prompt, session_id=args.session,
        n=args.n if args.n is not None else d.n,
        max_new_tokens=args.max_new_tokens if args.max_new_tokens is not None else d.max_new_tokens,
        temperature=args.temperature if args.temperature is not None else d.temperature,
        top_p=args.top_p if args.top_p is not None else d.top_p, seed=args.seed)
    params = request.params()
    explorer = _explorer(settings)
    for flag, weights in (("--direction", args.direction), ("--steer", args.steer)):
        if weights:  # checked before generating, against the objectives the round will have
            k = len(explorer.reward_model.objectives)
            n_weights = len(weights.split(","))
            if n_weights not in (k + 2, k + 3):
                raise UserError(f"{flag} has {n_weights} weights; this reward model gives {k} objectives plus "
                                "the measured ones (length_tokens, gen_seconds[, mean_logprob])")
    if args.steer:
        names = (*explorer.reward_model.objectives, MEASURED_LENGTH, MEASURED_TIME, MEASURED_LOGPROB)
        steer = _parse_direction(args.steer, names[:len(args.steer.split(","))])
        params = dataclasses.replace(params, steer=validation.direction(list(steer.objectives),
                                                                        list(steer.weights), args.method))
    rnd = explorer.run_round(request.prompt, params, session_id=request.session_id or None)
    ranked = None
    if args.direction:
        direction = _parse_direction(args.direction, rnd.objectives)
        direction = validation.direction(list(direction.objectives), list(direction.weights), args.method)
        ranked = explorer.rerank(rnd.round_id, direction, rnd.session_id)
        rnd = explorer.get_round(rnd.round_id, rnd.session_id)
    elif rnd.params.steer is not None:  # the round was ranked along its steering direction when it ended
        ranked = ranking.rank(rnd.reward_matrix(), rnd.maximize, rnd.direction, rnd.objectives)
    print(json.dumps(summary.round_summary(rnd, ranked), ensure_ascii=False))
    return 0


def configure_score(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help='JSON Lines: {"prompt": text or chat messages, "responses": [...]}.')
    p.add_argument("--out", required=True, help="Output JSON Lines: input rows plus objectives/rewards/gating/score.")


def run_score(args, settings: Settings) -> int:
    rows = []
    try:
        lines = Path(args.input).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{args.input}: not UTF-8 text") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            assert isinstance(row, dict) and isinstance(row["responses"], list) and row["prompt"]
        except (json.JSONDecodeError, AssertionError, KeyError, TypeError) as exc:
            raise UserError(f"{args.input}:{lineno}: expected {{\"prompt\": ..., \"responses\": [...]}}") from exc
        try:
            validation.messages(row["prompt"])
            for i, response in enumerate(row["responses"]):
                validation.text(response, f"responses[{i}]")
        except UserError as exc:
            raise UserError(f"{args.input}:{lineno}: {exc}") from None
        rows.append(row)
    explorer = _explorer(settings, generator=False)
    with open(args.out, "w") as out:
        for row in rows:
            result = explorer.score(row["prompt"], row["responses"])
            out.write(json.dumps({**row, "objectives": list(result.objectives),
                                  "rewards": result.rewards.tolist(), "gating": result.gating.tolist(),
                                  "score": result.score.tolist()}, ensure_ascii=False) + "\n")
    log.info("scored %d rows into %s", len(rows), args.out)
    return 0


def configure_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--share", action="store_true", help="Ask Gradio for a public share link (needs network).")


def run_serve(args, settings: Settings) -> int:
    from mo_explorer.ui.app import launch

    explorer = _explorer(settings)
    explorer.recover_interrupted()
    explorer.housekeeper.start()  # idle sessions removed now, then daily
    launch(explorer, settings, share=args.share)
    return 0


def configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("session_id", help="Session to export.")
    p.add_argument("--format", choices=("trl", "json", "csv"), default="json", help="Export format.")
    p.add_argument("--out", required=True, help="Output file.")


def run_export(args, settings: Settings) -> int:
    explorer = _storage(settings)
    Path(args.out).write_text(explorer.export_session(args.session_id, args.format))
    log.info("wrote %s export of session %s to %s", args.format, args.session_id, args.out)
    return 0


def configure_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="A `json` export written by `export --format json`.")


def run_import(args, settings: Settings) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    explorer = _storage(settings)
    print(json.dumps({"session_id": explorer.import_session(path.read_bytes())}))
    return 0


def configure_sessions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=20, help="How many sessions to list, newest first.")


def run_sessions(args, settings: Settings) -> int:
    for s in _storage(settings).list_sessions(limit=args.limit):
        print(json.dumps({"session_id": s.session_id, "created_at": s.created_at, "rounds": len(s.rounds)}))
    return 0


def _training(name: str):
    import importlib

    return importlib.import_module(f"mo_explorer.training.{name}")


def _training_command(name: str):
    """configure/run pair for a training module, imported only when that subcommand is used."""

    def configure(p: argparse.ArgumentParser) -> None:
        _training(name).configure(p)

    return configure, lambda a, s: _training(name).main(a, s)


COMMANDS = {
    "serve": ("Start the web UI.", configure_serve, run_serve),
    "generate": ("Generate, score and store one round; print it as JSON.", configure_generate, run_generate),
    "score": ("Score prompt/response rows with the reward model.", configure_score, run_score),
    "train": ("Train the multi-objective reward head (stage 1 ridge, debiasing, stage 2 gate).",
              *_training_command("train")),
    "eval": ("Evaluate a reward model on preference pairs.", *_training_command("evaluate")),
    "export": ("Export a session (trl | json | csv).", configure_export, run_export),
    "import": ("Restore a json export as a new session.", configure_import, run_import),
    "sessions": ("List stored sessions.", configure_sessions, run_sessions),
}


LAZY = {"train", "eval"}  # their arguments are added only when that subcommand runs (they import torch)


def make_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser; every subcommand also takes every setting as a flag."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    settings_parent = argparse.ArgumentParser(add_help=False)
    add_settings_arguments(settings_parent.add_argument_group("settings (override MO_EXPLORER_* variables)"))
    parser = argparse.ArgumentParser(prog="python -m mo_explorer", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="Debug logging.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[settings_parent],
                           conflict_handler="resolve")
        if name not in LAZY or name == command:
            configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build settings (env, then flags) and run the subcommand."""
    args = make_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mo_explorer.errors import ModelError, NotFoundError

    try:
        settings = Settings.from_env().with_args(args)
        return COMMANDS[args.command][2](args, settings)
    except (UserError, NotFoundError, ModelError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
