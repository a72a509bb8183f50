"""`python -m mo_explorer.training.trunk_ensemble --members A B --out C`: one trunk directory from several.

Each member is a `training.trunk --out` directory fitted on the same pairs, with a different `--fit-seed` or a
different `--top-layers`. The ensemble scores text with the mean of the members' qualities (models/trunk.py,
TrunkEnsemble: the lower layers run once), and its out_of_fold.npz holds the mean of the members' out-of-fold
qualities, so that `train --trunk C` learns the gate on exactly what the head will compute.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from mo_explorer.errors import UserError

OOF_FILE = "out_of_fold.npz"


def combine(members: list[Path], out: Path) -> dict:
    """Write the ensemble directory; returns {"members", "out_of_fold"}."""
    from mo_explorer.models.trunk import MEMBER_FILE, WEIGHTS_FILE, member_files, trunk_files

    if len(members) < 2:
        raise UserError("an ensemble needs at least two --members")
    infos = []
    for m in members:
        if not (m / "trunk.json").is_file() or not (m / OOF_FILE).is_file() or member_files(m) != [m / WEIGHTS_FILE]:
            raise UserError(f"{m}: not a single trunk written by `python -m mo_explorer.training.trunk --out` "
                            "(an ensemble cannot join an ensemble)")
        infos.append(json.loads((m / "trunk.json").read_text()))
    tokens = [(info["spec"]["max_tokens"], info["spec"]["prompt_tokens"]) for info in infos]
    if any(t != tokens[0] for t in tokens):
        raise UserError("the members read different tokens (--max-tokens, --prompt-tokens): train them with the same")
    tables = []
    for m in members:
        with np.load(m / OOF_FILE) as z:
            tables.append(dict(zip(z["keys"].tolist(), z["quality"].tolist())))
    keys = [k for k in tables[0] if all(k in t for t in tables[1:])]
    if len(keys) < len(tables[0]):
        raise UserError("the members scored different pairs out of fold: train them on the same pairs (the same "
                        "--seed, --pairs-limit, --extra-pairs and --train-subsets; only --fit-seed differs)")
    out.mkdir(parents=True, exist_ok=True)
    for stale in trunk_files(out):  # a former ensemble's members or a former trunk's parts
        stale.unlink()
    for i, m in enumerate(members):
        stem = Path(WEIGHTS_FILE if i == 0 else MEMBER_FILE.format(i)).stem
        for path in trunk_files(m):  # the member's weights and their parts (a trunk over 9 MB), renamed as member i
            shutil.copy2(path, out / path.name.replace(Path(WEIGHTS_FILE).stem, stem, 1))
    quality = np.mean([[t[k] for k in keys] for t in tables], axis=0)
    np.savez(out / OOF_FILE, keys=np.array(keys), quality=quality)
    report = {**infos[0]["report"], "ensemble": [info["report"].get("config", {}) for info in infos]}
    base = min(infos, key=lambda info: info["spec"]["lower_layers"])["spec"]  # the states the ensemble is handed
    (out / "trunk.json").write_text(json.dumps({"spec": base, "report": report}, indent=2))
    return {"members": [str(m) for m in members], "out_of_fold": len(keys)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mo_explorer.training.trunk_ensemble",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--members", nargs="+", required=True, help="`training.trunk --out` directories.")
    parser.add_argument("--out", required=True, help="The ensemble's directory (train --trunk reads it).")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(combine([Path(m) for m in args.members], Path(args.out))))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
