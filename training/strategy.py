"""Strategy files: YAML in, a validated and fully resolved config dict out.

The schema is documented in docs/training.md. `parse_strategy(text)` reads YAML with a bounded
`yaml.SafeLoader` (no objects, no alias bombs, no deep nesting), then `validate_strategy(data)`
checks every field and fills defaults, collecting *all* problems as (path, message) pairs so a user
fixes a file in one go (`indicators.rsi_14.period: must be an integer ≥ 2`). The resolved dict is
plain JSON: it travels in operation metadata, into model artifacts and to host agents unchanged.

No Django imports: the settings-dependent lookups (which directory) live in `training.selectors`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from training import fuzzy
from training.errors import StrategyError
from training.indicators import INDICATORS, PRICE_SOURCES, IndicatorSpec

MAX_STRATEGY_BYTES = 256 * 1024
# A strategy is a small tree: deeper nesting or more aliases than this is an attack, not a config.
MAX_YAML_DEPTH = 32
MAX_YAML_ALIASES = 50
# Offending values are quoted at most this long in an error message.
MAX_SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """A value quoted for an error message, bounded whatever it is (never an expanded repr)."""
    if isinstance(value, str):
        text = value if len(value) <= MAX_SHOWN_CHARS else value[:MAX_SHOWN_CHARS] + "…"
        return repr(text)
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key{'s' if len(value) != 1 else ''}"
    scalar = isinstance(value, (int, float, bool, type(None)))
    text = repr(value) if scalar else type(value).__name__
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…"


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses deep nesting and alias bombs before building anything."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _TooComplex(f"more than {MAX_YAML_ALIASES} aliases")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _TooComplex(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooComplex(yaml.YAMLError):
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,19}$")
# Bar sizes the pipeline aligns; minutes per bar orders them (the base must be the finest).
TIMEFRAME_MINUTES = {"1m": 1, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 1440}
ACTIVATIONS = ("relu", "gelu", "tanh", "leaky_relu", "elu")
OPTIMIZERS = ("adam", "adamw")
LABEL_TYPES = ("zigzag", "forward_return")
TOP_LEVEL_KEYS = (
    "name",
    "description",
    "training_data",
    "indicators",
    "fuzzy_sets",
    "model_inputs",
    "labels",
    "split",
    "model",
)


class _Checker:
    """Collects (path, message) problems while reading a mapping with defaults."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def mapping(self, value: Any, path: str, *, required: bool = True) -> dict[str, Any]:
        if value is None and not required:
            return {}
        if not isinstance(value, dict):
            self.error(path, "must be a mapping" if value is not None else "is required")
            return {}
        return value

    def unknown_keys(self, value: dict[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.error(where, f"unknown key; allowed: {', '.join(allowed)}")

    def integer(
        self, value: Any, path: str, *, minimum: int, maximum: int | None = None
    ) -> int | None:
        # bool is an int in Python; `period: true` is a mistake, not 1.
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and value >= minimum and (maximum is None or value <= maximum):
            return value
        # Name the bound that was broken: `must be an integer ≥ 2` is what a user needs to read.
        too_big = ok and maximum is not None and value > maximum
        self.error(
            path,
            f"must be an integer ≤ {maximum}" if too_big else f"must be an integer ≥ {minimum}",
        )
        return None

    def number(
        self,
        value: Any,
        path: str,
        *,
        minimum: float,
        maximum: float | None = None,
        exclusive_min: bool = False,
        exclusive_max: bool = False,
    ) -> float | None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and math.isfinite(value):
            low_ok = value > minimum if exclusive_min else value >= minimum
            high_ok = maximum is None or (value < maximum if exclusive_max else value <= maximum)
            if low_ok and high_ok:
                return float(value)
        low = f"> {minimum}" if exclusive_min else f"≥ {minimum}"
        high = (
            ""
            if maximum is None
            else (f" and < {maximum}" if exclusive_max else f" and ≤ {maximum}")
        )
        self.error(path, f"must be a number {low}{high}")
        return None

    def choice(self, value: Any, path: str, choices: tuple[str, ...]) -> str | None:
        if isinstance(value, str) and value in choices:
            return value
        self.error(path, f"must be one of {', '.join(choices)} (got {shown(value)})")
        return None

    def string_list(self, value: Any, path: str, pattern: re.Pattern[str], what: str) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.error(path, f"must be a non-empty list of {what}")
            return []
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not pattern.match(item):
                self.error(f"{path}[{i}]", f"{shown(item)} is not a valid {what}")
            elif item in out:
                self.error(f"{path}[{i}]", f"{shown(item)} is listed twice")
            else:
                out.append(item)
        return out


def _iso_date(value: Any, path: str, check: _Checker) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return value
    check.error(path, f"must be an ISO date like 2017-01-01 (got {shown(value)})")
    return None


def _training_data(raw: Any, check: _Checker) -> dict[str, Any]:
    data = check.mapping(raw, "training_data")
    check.unknown_keys(
        data, ("symbols", "timeframes", "base_timeframe", "history"), "training_data"
    )
    symbols = check.string_list(data.get("symbols"), "training_data.symbols", SYMBOL_RE, "symbol")
    timeframes = check.string_list(
        data.get("timeframes"), "training_data.timeframes", re.compile(r"^\w+$"), "timeframe"
    )
    for i, tf in enumerate(timeframes):
        if tf not in TIMEFRAME_MINUTES:
            check.error(
                f"training_data.timeframes[{i}]",
                f"unknown timeframe {shown(tf)}; use one of {', '.join(TIMEFRAME_MINUTES)}",
            )
    timeframes = sorted(
        (tf for tf in timeframes if tf in TIMEFRAME_MINUTES), key=TIMEFRAME_MINUTES.get
    )
    base = data.get("base_timeframe", timeframes[0] if timeframes else None)
    if timeframes and base != timeframes[0]:
        check.error(
            "training_data.base_timeframe",
            f"must be the finest listed timeframe ({timeframes[0]}), got {shown(base)}",
        )
    history = check.mapping(data.get("history"), "training_data.history", required=False)
    check.unknown_keys(history, ("start", "end"), "training_data.history")
    start = _iso_date(history.get("start"), "training_data.history.start", check)
    end = _iso_date(history.get("end"), "training_data.history.end", check)
    if start and end and start >= end:
        check.error("training_data.history.end", "must be after history.start")
    return {
        "symbols": symbols,
        "timeframes": timeframes,
        "base_timeframe": base,
        "history": {"start": start, "end": end},
    }


def _indicator_params(
    spec: IndicatorSpec, raw: dict[str, Any], path: str, check: _Checker
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    allowed = ("type", *(p.name for p in spec.params))
    check.unknown_keys(raw, allowed, path)
    for p in spec.params:
        value = raw.get(p.name, p.default)
        where = f"{path}.{p.name}"
        if p.kind == "int":
            params[p.name] = check.integer(value, where, minimum=int(p.minimum), maximum=10_000)
        elif p.kind == "float":
            params[p.name] = check.number(
                value, where, minimum=p.minimum, maximum=100.0, exclusive_min=True
            )
        else:
            params[p.name] = check.choice(value, where, PRICE_SOURCES)
    fast, slow = params.get("fast"), params.get("slow")
    if spec.type == "macd" and isinstance(fast, int) and isinstance(slow, int) and fast >= slow:
        check.error(f"{path}.fast", "must be smaller than slow")
    return params


def _indicators(raw: Any, check: _Checker) -> dict[str, dict[str, Any]]:
    indicators = check.mapping(raw, "indicators")
    if isinstance(raw, dict) and not raw:
        check.error("indicators", "must define at least one indicator")
    out: dict[str, dict[str, Any]] = {}
    for ind_id, raw_body in indicators.items():
        path = f"indicators.{ind_id}"
        if not isinstance(ind_id, str) or not ID_RE.match(ind_id):
            check.error(path, "id must start with a letter and use a-z, 0-9, _ (≤ 48 chars)")
            continue
        body = check.mapping(raw_body, path)
        if not body:
            continue
        type_ = body.get("type")
        if type_ not in INDICATORS:
            check.error(
                f"{path}.type",
                f"unknown indicator {shown(type_)}; use one of {', '.join(sorted(INDICATORS))}",
            )
            continue
        out[ind_id] = {"type": type_, **_indicator_params(INDICATORS[type_], body, path, check)}
    return out


def _fuzzy_sets(raw: Any, indicators: dict[str, dict[str, Any]], check: _Checker) -> dict:
    groups = check.mapping(raw, "fuzzy_sets", required=False)
    out: dict[str, dict[str, Any]] = {}
    for group_id, raw_body in groups.items():
        path = f"fuzzy_sets.{group_id}"
        if not isinstance(group_id, str) or not ID_RE.match(group_id):
            check.error(path, "id must start with a letter and use a-z, 0-9, _ (≤ 48 chars)")
            continue
        if group_id in indicators:
            check.error(path, "an indicator has the same id; fuzzy set ids must be distinct")
            continue
        body = check.mapping(raw_body, path)
        check.unknown_keys(body, ("input", "sets"), path)
        source = body.get("input")
        resolved_input = _indicator_ref(source, indicators, f"{path}.input", check)
        sets = check.mapping(body.get("sets"), f"{path}.sets")
        if isinstance(body.get("sets"), dict) and not sets:
            check.error(f"{path}.sets", "must define at least one membership set")
        members: dict[str, dict[str, Any]] = {}
        for set_name, raw_spec in sets.items():
            spath = f"{path}.sets.{set_name}"
            if not isinstance(set_name, str) or not ID_RE.match(set_name):
                check.error(spath, "set name must start with a letter and use a-z, 0-9, _")
                continue
            spec = check.mapping(raw_spec, spath)
            check.unknown_keys(spec, ("type", "parameters"), spath)
            kind = check.choice(spec.get("type"), f"{spath}.type", tuple(fuzzy.PARAM_COUNTS))
            params = spec.get("parameters")
            numbers_ok = isinstance(params, list) and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in params
            )
            if not numbers_ok:
                check.error(f"{spath}.parameters", "must be a list of numbers")
                continue
            if kind is None:
                continue
            problem = fuzzy.check_parameters(kind, [float(x) for x in params])
            if problem:
                check.error(f"{spath}.parameters", problem)
                continue
            members[set_name] = {"type": kind, "parameters": [float(x) for x in params]}
        out[group_id] = {"input": resolved_input, "sets": members}
    return out


def _indicator_ref(
    ref: Any, indicators: dict[str, dict[str, Any]], path: str, check: _Checker
) -> str | None:
    """`rsi_14` (its default output) or `macd.histogram` → canonical `id.output`."""
    if not isinstance(ref, str) or not ref:
        check.error(path, "must name an indicator output like rsi_14 or macd.histogram")
        return None
    ind_id, _, output = ref.partition(".")
    if ind_id not in indicators:
        defined = ", ".join(indicators) or "-"
        check.error(path, f"unknown indicator {shown(ind_id)}; defined: {defined}")
        return None
    spec = INDICATORS[indicators[ind_id]["type"]]
    output = output or spec.default_output
    if output not in spec.outputs:
        check.error(
            path,
            f"{spec.type} indicator {shown(ind_id)} has no output {shown(output)}; "
            f"use one of {', '.join(spec.outputs)}",
        )
        return None
    return f"{ind_id}.{output}"


def _model_inputs(
    raw: Any, indicators: dict[str, Any], fuzzy_sets: dict[str, Any], check: _Checker
) -> list[str]:
    if not isinstance(raw, list) or not raw:
        check.error("model_inputs", "must be a non-empty list of inputs")
        return []
    out: list[str] = []
    for i, ref in enumerate(raw):
        path = f"model_inputs[{i}]"
        if isinstance(ref, str) and ref.partition(".")[0] in fuzzy_sets:
            group, _, member = ref.partition(".")
            if member not in fuzzy_sets[group]["sets"]:
                check.error(
                    path,
                    f"fuzzy set group {shown(group)} has no set {shown(member)}; "
                    f"use one of {', '.join(fuzzy_sets[group]['sets']) or '-'}",
                )
                continue
            canonical = f"{group}.{member}"
        else:
            canonical = _indicator_ref(ref, indicators, path, check)
            if canonical is None:
                continue
        if canonical in out:
            check.error(path, f"{canonical} is listed twice")
            continue
        out.append(canonical)
    return out


def _labels(raw: Any, check: _Checker) -> dict[str, Any]:
    body = check.mapping(raw, "labels")
    kind = check.choice(body.get("type"), "labels.type", LABEL_TYPES) if body else None
    if kind == "zigzag":
        check.unknown_keys(body, ("type", "threshold"), "labels")
        threshold = check.number(
            body.get("threshold", 0.01),
            "labels.threshold",
            minimum=0.0,
            maximum=1.0,
            exclusive_min=True,
            exclusive_max=True,
        )
        return {"type": kind, "threshold": threshold}
    if kind == "forward_return":
        check.unknown_keys(body, ("type", "horizon", "threshold"), "labels")
        horizon = check.integer(
            body.get("horizon", 12), "labels.horizon", minimum=1, maximum=10_000
        )
        threshold = check.number(
            body.get("threshold", 0.002),
            "labels.threshold",
            minimum=0.0,
            maximum=1.0,
            exclusive_max=True,
        )
        return {"type": kind, "horizon": horizon, "threshold": threshold}
    return {}


def _split(raw: Any, check: _Checker) -> dict[str, float]:
    body = check.mapping(raw, "split", required=False) or {
        "train": 0.7,
        "validation": 0.15,
        "test": 0.15,
    }
    check.unknown_keys(body, ("train", "validation", "test"), "split")
    out: dict[str, float] = {}
    for key in ("train", "validation", "test"):
        value = check.number(
            body.get(key),
            f"split.{key}",
            minimum=0.0,
            maximum=1.0,
            exclusive_min=True,
            exclusive_max=True,
        )
        if value is not None:
            out[key] = value
    if len(out) == 3 and abs(sum(out.values()) - 1.0) > 1e-6:
        check.error("split", f"train + validation + test must be 1 (got {sum(out.values()):g})")
    return out


def _model(raw: Any, check: _Checker) -> dict[str, Any]:
    body = check.mapping(raw, "model")
    check.unknown_keys(
        body, ("type", "hidden_layers", "dropout", "activation", "training"), "model"
    )
    kind = check.choice(body.get("type", "mlp"), "model.type", ("mlp",))
    layers_raw = body.get("hidden_layers", [32, 16])
    layers: list[int] = []
    if not isinstance(layers_raw, list) or not 1 <= len(layers_raw) <= 8:
        check.error("model.hidden_layers", "must be a list of 1 to 8 layer sizes")
    else:
        for i, size in enumerate(layers_raw):
            value = check.integer(size, f"model.hidden_layers[{i}]", minimum=1, maximum=4096)
            if value is not None:
                layers.append(value)
    dropout = check.number(
        body.get("dropout", 0.0), "model.dropout", minimum=0.0, maximum=1.0, exclusive_max=True
    )
    activation = check.choice(body.get("activation", "relu"), "model.activation", ACTIVATIONS)
    t = check.mapping(body.get("training"), "model.training", required=False)
    check.unknown_keys(
        t,
        (
            "epochs",
            "batch_size",
            "learning_rate",
            "optimizer",
            "weight_decay",
            "class_weights",
            "early_stopping",
            "seed",
        ),
        "model.training",
    )
    p = "model.training"
    training: dict[str, Any] = {
        "epochs": check.integer(t.get("epochs", 20), f"{p}.epochs", minimum=1, maximum=10_000),
        "batch_size": check.integer(
            t.get("batch_size", 256), f"{p}.batch_size", minimum=1, maximum=65_536
        ),
        "learning_rate": check.number(
            t.get("learning_rate", 0.001),
            f"{p}.learning_rate",
            minimum=0.0,
            maximum=1.0,
            exclusive_min=True,
        ),
        "optimizer": check.choice(t.get("optimizer", "adam"), f"{p}.optimizer", OPTIMIZERS),
        "weight_decay": check.number(
            t.get("weight_decay", 0.0), f"{p}.weight_decay", minimum=0.0, maximum=1.0
        ),
        "class_weights": check.choice(
            t.get("class_weights", "balanced"), f"{p}.class_weights", ("balanced", "none")
        ),
        "seed": check.integer(t.get("seed", 42), f"{p}.seed", minimum=0, maximum=2**31 - 1),
    }
    stop = t.get("early_stopping", {"patience": 5})
    if stop in (None, False):
        training["early_stopping"] = None
    else:
        stop = check.mapping(stop, f"{p}.early_stopping")
        check.unknown_keys(stop, ("patience", "min_delta"), f"{p}.early_stopping")
        training["early_stopping"] = {
            "patience": check.integer(
                stop.get("patience", 5), f"{p}.early_stopping.patience", minimum=1, maximum=10_000
            ),
            "min_delta": check.number(
                stop.get("min_delta", 0.0), f"{p}.early_stopping.min_delta", minimum=0.0
            ),
        }
    return {
        "type": kind,
        "hidden_layers": layers,
        "dropout": dropout,
        "activation": activation,
        "training": training,
    }


def validate_strategy(data: Any, *, expected_name: str | None = None) -> dict[str, Any]:
    """Check a parsed strategy and return it resolved (defaults filled, references canonical).

    Raises `StrategyError` listing every problem with its path.
    """
    check = _Checker()
    if not isinstance(data, dict):
        raise StrategyError([("", "a strategy must be a YAML mapping at the top level")])
    check.unknown_keys(data, TOP_LEVEL_KEYS, "")
    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        check.error(
            "name", "must be 1-64 characters of a-z, 0-9, _ or -, starting with a letter/digit"
        )
    elif expected_name is not None and name != expected_name:
        check.error("name", f"must match the file name {shown(expected_name)} (got {shown(name)})")
    description = data.get("description", "")
    if not isinstance(description, str):
        check.error("description", "must be text")
        description = ""
    training_data = _training_data(data.get("training_data"), check)
    indicators = _indicators(data.get("indicators"), check)
    fuzzy_sets = _fuzzy_sets(data.get("fuzzy_sets"), indicators, check)
    model_inputs = _model_inputs(data.get("model_inputs"), indicators, fuzzy_sets, check)
    labels = _labels(data.get("labels"), check)
    split = _split(data.get("split"), check)
    model = _model(data.get("model"), check)
    if check.errors:
        raise StrategyError(check.errors)
    return {
        "name": name,
        "description": description.strip(),
        "training_data": training_data,
        "indicators": indicators,
        "fuzzy_sets": fuzzy_sets,
        "model_inputs": model_inputs,
        "labels": labels,
        "split": split,
        "model": model,
    }


def parse_strategy(text: str | bytes, *, expected_name: str | None = None) -> dict[str, Any]:
    """YAML text → resolved strategy. A `yaml.SafeLoader` only (a strategy never builds objects),
    bounded in nesting and aliases so no text can expand into a huge or endless structure."""
    if isinstance(text, bytes):
        if len(text) > MAX_STRATEGY_BYTES:
            raise StrategyError([("", f"strategy is larger than {MAX_STRATEGY_BYTES} bytes")])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StrategyError([("", f"strategy is not UTF-8 text ({exc.reason})")]) from None
    if len(text) > MAX_STRATEGY_BYTES:
        raise StrategyError([("", f"strategy is larger than {MAX_STRATEGY_BYTES} bytes")])
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        problem = f"invalid YAML: nested deeper than {MAX_YAML_DEPTH} levels"
        raise StrategyError([("", problem)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise StrategyError([("", f"invalid YAML{where}: {problem}")]) from None
    return validate_strategy(data, expected_name=expected_name)


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved strategy (models are grouped by it)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def indicator_warmups(config: dict[str, Any]) -> dict[str, int]:
    """A rough upper bound on warm-up bars per indicator, for messages before data is seen."""
    out = {}
    for ind_id, params in config["indicators"].items():
        periods = [v for k, v in params.items() if isinstance(v, int) and k != "type"]
        if params["type"] == "macd":
            out[ind_id] = params["slow"] + params["signal"]
        elif params["type"] == "adx":
            out[ind_id] = 2 * params["period"]
        else:
            out[ind_id] = sum(periods) if periods else 1
    return out


@dataclass(frozen=True)
class StrategyFile:
    """A strategy file as found on disk: its config when valid, its error when not."""

    name: str
    path: Path
    text: str
    config: dict[str, Any] | None
    error: StrategyError | None

    @property
    def is_valid(self) -> bool:
        return self.config is not None


def read_strategy_file(path: Path) -> StrategyFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        err = StrategyError([("", f"cannot read {path.name}: {exc.strerror}")])
        return StrategyFile(path.stem, path, "", None, err)
    text = raw.decode("utf-8", errors="replace")
    try:
        config = parse_strategy(raw, expected_name=path.stem)
    except StrategyError as exc:
        return StrategyFile(path.stem, path, text, None, exc)
    return StrategyFile(path.stem, path, text, config, None)
