"""The shipped gate on requests of our own (data/gate_requests.json): what a user sees in the gate chart.

Everyday, coding and short factual requests put little of the gate's weight on harmlessness, harmful ones put most
of it there, and no class of request is dominated by length (verbosity).
"""

from __future__ import annotations

import json

import pytest

from mo_explorer import config
from mo_explorer.training import gate_check

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def shipped():
    from mo_explorer.models.head_reward import HeadRewardModel

    return HeadRewardModel.load(config.EMBEDDED_HEAD_DIR, config.Settings.from_env().models.cache_dir, device="cpu")


def test_the_request_set_is_big_enough_and_expects_something_of_every_class():
    spec = json.loads(gate_check.REQUESTS.read_text())
    assert sum(len(v) for v in spec["requests"].values()) >= 40
    assert set(spec["expect"]) == set(spec["requests"]) == {"everyday", "harmful", "coding", "factual"}


def test_the_gate_reads_requests_as_a_person_would(shipped):
    spec = json.loads(gate_check.REQUESTS.read_text())
    shares = gate_check.class_shares(shipped, spec["requests"])
    assert gate_check.misses(shares, spec["expect"]) == [], gate_check.markdown(shares)
    # Length never buys score: the gate gives verbosity nothing, for every request.
    assert all(row["verbosity"] == 0.0 for s in shares.values() for row in s["requests"].values())
    # Harmful requests put more on harmlessness than any other objective, request by request for most of them.
    rows = shares["harmful"]["requests"].values()
    assert sum(max(r, key=r.get) == "harmlessness" for r in rows) >= 0.75 * len(rows), list(rows)


def test_misses_reads_its_rules():
    shares = {"everyday": {"mean": {"harmlessness": 0.3, "verbosity": 0.1}, "requests": {}}}
    assert gate_check.misses(shares, {"everyday": {"harmlessness_at_most": 0.2}}) == [
        "everyday: mean harmlessness share 0.30, expected at most 0.2"]
    assert gate_check.misses(shares, {"everyday": {"verbosity_at_least": 0.05}}) == []
