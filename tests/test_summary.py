"""The one JSON form of a round (API and CLI): candidates named by their ids, never by their row positions."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from mo_explorer.ranking import rank
from mo_explorer.schema import Direction
from mo_explorer.summary import round_summary
from tests.ui_support import MAXIMIZE, NAMES, synthetic_round

R = np.array([[0.9, 0.1, 0.5, 12, 2.0], [0.2, 0.8, 0.4, 30, 1.0], [0.1, 0.1, 0.1, 50, 4.0]])


def test_the_summary_is_json_with_the_ranking_front_and_ranks():
    rnd = synthetic_round(R, scores=[0.1, 0.7, 0.3])
    out = round_summary(rnd, rank(R, MAXIMIZE, Direction(("helpful",), (1.0,)), NAMES))
    json.dumps(out)
    assert out["objectives"] == list(NAMES) and len(out["candidates"]) == 3
    assert out["ranking"]["order"] == [0, 1, 2] and out["ranking"]["best"] == 0
    assert [c["rank"] for c in out["candidates"]] == [0, 1, 2]  # by the direction: most helpful first
    assert out["pareto_front"] == [0, 1]
    plain = round_summary(rnd)
    assert plain["ranking"] is None  # no direction asked for
    assert [c["rank"] for c in plain["candidates"]] == [2, 0, 1]  # ranked by the gated score instead


def test_an_imported_session_whose_ids_start_at_5_is_described_by_those_ids():
    rnd = synthetic_round(R)
    rnd = dataclasses.replace(rnd, candidates=tuple(dataclasses.replace(c, index=c.index + 5)
                                                    for c in rnd.candidates))
    out = round_summary(rnd, rank(R, MAXIMIZE, Direction(("safe",), (1.0,)), NAMES))
    assert [c["index"] for c in out["candidates"]] == [5, 6, 7]
    assert out["ranking"]["best"] == 6 and out["ranking"]["order"][0] == 6  # the safest, by its id
    assert out["pareto_front"] == [5, 6]
