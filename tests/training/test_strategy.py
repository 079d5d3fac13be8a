"""Strategy schema: validation errors carry their path; shipped strategies are valid."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from tests.training.conftest import SMALL_STRATEGY
from training.errors import StrategyError
from training.strategy import config_hash, parse_strategy, validate_strategy

SHIPPED = sorted((Path(__file__).resolve().parents[2] / "strategies").glob("*.yaml"))


def errors_of(raw) -> dict[str, list[str]]:
    with pytest.raises(StrategyError) as info:
        validate_strategy(raw)
    return info.value.as_details()


def with_change(path: str, value):
    raw = copy.deepcopy(SMALL_STRATEGY)
    node = raw
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    return raw


def test_shipped_strategies_are_valid_and_named_after_their_files():
    assert len(SHIPPED) >= 3
    for path in SHIPPED:
        config = parse_strategy(path.read_bytes(), expected_name=path.stem)
        assert config["name"] == path.stem


def test_an_invalid_period_names_its_path():
    with pytest.raises(StrategyError) as info:
        validate_strategy(with_change("indicators.rsi_14.period", 1))
    assert str(info.value) == "indicators.rsi_14.period: must be an integer ≥ 2"


def test_a_boolean_is_not_an_integer():
    assert "indicators.rsi_14.period" in errors_of(with_change("indicators.rsi_14.period", True))


def test_an_unknown_indicator_type_is_named():
    details = errors_of(with_change("indicators.rsi_14", {"type": "vwapx"}))
    assert "unknown indicator 'vwapx'" in details["indicators.rsi_14.type"][0]


def test_an_unknown_model_input_is_named_with_its_position():
    details = errors_of(with_change("model_inputs", ["rsi_zone.low", "nope.value"]))
    assert "unknown indicator 'nope'" in details["model_inputs[1]"][0]


def test_an_unknown_indicator_output_lists_the_valid_ones():
    details = errors_of(with_change("model_inputs", ["macd.hist"]))
    assert "macd, signal, histogram" in details["model_inputs[0]"][0]


def test_a_fuzzy_set_with_bad_parameters_is_named():
    details = errors_of(with_change("fuzzy_sets.rsi_zone.sets.mid.parameters", [65, 50, 35]))
    assert "ascending" in details["fuzzy_sets.rsi_zone.sets.mid.parameters"][0]


def test_a_split_that_does_not_sum_to_one_is_rejected():
    details = errors_of(with_change("split", {"train": 0.8, "validation": 0.15, "test": 0.15}))
    assert "must be 1" in details["split"][0]


def test_unknown_keys_are_reported_not_ignored():
    details = errors_of(with_change("model.training.epocs", 3))
    assert "model.training.epocs" in details


def test_every_problem_is_reported_at_once():
    raw = with_change("indicators.rsi_14.period", 0)
    raw["labels"] = {"type": "zigzag", "threshold": 2}
    raw["model"]["dropout"] = 1.5
    assert {"indicators.rsi_14.period", "labels.threshold", "model.dropout"} <= set(errors_of(raw))


def test_invalid_yaml_reports_line_and_column():
    with pytest.raises(StrategyError, match=r"invalid YAML at line \d+, column \d+"):
        parse_strategy("name: x\nindicators: [unclosed\n")


def test_yaml_tags_that_build_python_objects_are_refused():
    with pytest.raises(StrategyError, match="invalid YAML"):
        parse_strategy("!!python/object/apply:os.system ['echo pwned']\n")


def test_defaults_are_filled_and_references_made_canonical():
    raw = copy.deepcopy(SMALL_STRATEGY)
    del raw["split"]
    del raw["model"]["training"]["batch_size"]
    config = parse_strategy(yaml.safe_dump(raw))
    assert config["split"] == {"train": 0.7, "validation": 0.15, "test": 0.15}
    assert config["model"]["training"]["batch_size"] == 256
    assert config["fuzzy_sets"]["rsi_zone"]["input"] == "rsi_14.value"
    assert "atr_14.value" in config["model_inputs"]


def test_config_hash_is_stable_and_changes_with_the_config():
    a = validate_strategy(copy.deepcopy(SMALL_STRATEGY))
    b = validate_strategy(copy.deepcopy(SMALL_STRATEGY))
    c = validate_strategy(with_change("model.dropout", 0.2))
    assert config_hash(a) == config_hash(b) != config_hash(c)


def test_the_file_name_must_match_the_strategy_name():
    with pytest.raises(StrategyError, match="must match the file name"):
        parse_strategy(yaml.safe_dump(SMALL_STRATEGY), expected_name="other")
