"""Every setting is documented in the README, and settings resolve env then flags."""

import argparse
from pathlib import Path

import pytest

from mo_explorer.config import Settings, add_settings_arguments, iter_settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("section,field", iter_settings(), ids=lambda v: getattr(v, "name", v))
def test_setting_is_documented(section, field):
    assert f"`{section}.{field.name}`" in README
    assert f"`{field.metadata['env']}`" in README
    assert f"`{field.metadata['flag']}`" in README


def test_env_then_flags_override_defaults():
    settings = Settings.from_env({"MO_EXPLORER_N": "6", "MO_EXPLORER_TEMPERATURE": "0.5"})
    assert settings.defaults.n == 6 and settings.defaults.temperature == 0.5
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    overridden = settings.with_args(parser.parse_args(["--default-n", "9"]))
    assert overridden.defaults.n == 9 and overridden.defaults.temperature == 0.5


def test_bad_environment_value_is_refused_clearly():
    with pytest.raises(ValueError, match="MO_EXPLORER_N"):
        Settings.from_env({"MO_EXPLORER_N": "many"})


def test_database_url_wins_over_path(tmp_path):
    assert Settings.from_env({"MO_EXPLORER_DATABASE_URL": "sqlite://"}).storage.resolved_url() == "sqlite://"
    url = Settings.from_env({"MO_EXPLORER_DATABASE_PATH": str(tmp_path / "x.db")}).storage.resolved_url()
    assert url == f"sqlite:///{tmp_path / 'x.db'}"


def test_every_objective_of_the_shipped_head_is_named_in_the_readme_with_its_meaning():
    import json

    from mo_explorer.objectives import meaning

    head = json.loads((Path(__file__).resolve().parent.parent / "data" / "reward_head" / "config.json").read_text())
    for name in [*head["objectives"], "length_tokens", "gen_seconds"]:
        assert f"| `{name}` | {meaning(name)} |" in README, name


def test_the_readme_example_of_score_input_is_valid_input():
    import json
    import re

    from mo_explorer import validation

    block = re.search(r"`score` reads JSON Lines.*?```json\n(.*?)```", README, re.S).group(1)
    rows = [json.loads(line) for line in block.splitlines() if line.strip()]
    assert len(rows) == 2
    for row in rows:
        validation.messages(row["prompt"])
        assert row["responses"] and all(validation.text(r, "response") for r in row["responses"])
