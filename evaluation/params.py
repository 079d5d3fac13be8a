"""What an evaluation request may ask for, checked and bounded; errors name the field.

Used by `evaluation.services` on a start and by `evaluation.kinds` again when the run is prepared
(an agent, a re-run or a resumed run trusts nothing stored). No Django models.
"""

from __future__ import annotations

from typing import Any

from evaluation.aggregate import DEFAULT_BOOTSTRAP_SEED, DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES
from evaluation.folds import MIN_TEST_BARS, MIN_TRAIN_BARS, SCHEMES
from marketdata.store import parse_bound
from operations.bounds import bounded_float, bounded_int
from operations.exceptions import InvalidInput
from training.labels import label_horizon
from training.strategy import SYMBOL_RE, TIMEFRAME_MINUTES

FOLDS_RANGE = (2, 20)
FOLDS_DEFAULT = 5
SEEDS_RANGE = (1, 10)
SEEDS_DEFAULT = 1
MAX_BARS = 10_000_000
MAX_GAP_BARS = 100_000
EPOCHS_RANGE = (1, 1000)
RESAMPLES_RANGE = (100, 100_000)
CONFIDENCE_RANGE = (0.5, 0.999)
MAX_SEED = 2**31 - 1
# The purge and embargo of zigzag labels, whose look-ahead has no fixed length (labels are
# computed per range anyway, `docs/research.md` *Evaluation*): a day of hourly bars.
ZIGZAG_GAP_BARS = 24


def _given(value: Any, default: Any) -> Any:
    return default if value in (None, "") else value


def _optional_int(body: dict[str, Any], field: str, lo: int, hi: int) -> int | None:
    value = body.get(field)
    return None if value in (None, "") else bounded_int(value, field, lo, hi)


def seed_list(value: Any, default_seed: int) -> list[int]:
    """`seeds`: a count (1-10: the strategy's seed and the next ones) or a list of distinct
    seeds; default one, the strategy's."""
    if value in (None, ""):
        return [default_seed]
    if isinstance(value, str) and "," in value:
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        if not SEEDS_RANGE[0] <= len(value) <= SEEDS_RANGE[1]:
            raise InvalidInput(
                f"seeds must list {SEEDS_RANGE[0]} to {SEEDS_RANGE[1]} seeds", field="seeds"
            )
        seeds = [bounded_int(v, "seeds", 0, MAX_SEED) for v in value]
        if len(set(seeds)) != len(seeds):
            raise InvalidInput("a seed is listed twice", field="seeds")
        return seeds
    count = bounded_int(value, "seeds", *SEEDS_RANGE)
    return [(default_seed + i) % (MAX_SEED + 1) for i in range(count)]


def default_gap(labels: dict[str, Any]) -> int:
    """The default purge and embargo: the labels' horizon (zigzag: ZIGZAG_GAP_BARS)."""
    horizon = label_horizon(labels)
    return horizon if horizon is not None else ZIGZAG_GAP_BARS


def check_request(body: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The validated parameters of an evaluation of the resolved strategy `config`.

    Keys: symbol, timeframes (the strategy's; `timeframe` may name its base one), start, end
    (ISO UTC or None), folds, scheme, train_bars, test_bars (None: derived), test_fraction,
    purge_bars, embargo_bars, seeds (a list), epochs (None: the strategy's), bootstrap
    {resamples, confidence, seed}."""
    if not isinstance(body, dict):
        raise InvalidInput("the request must be a JSON object")
    data = config["training_data"]
    symbol = body.get("symbol") or data["symbols"][0]
    if not isinstance(symbol, str) or not SYMBOL_RE.match(symbol.upper()):
        raise InvalidInput(f"{symbol!r} is not a valid symbol", field="symbol")
    timeframes = sorted(data["timeframes"], key=TIMEFRAME_MINUTES.get)
    timeframe = body.get("timeframe") or timeframes[0]
    if not isinstance(timeframe, str) or timeframe not in TIMEFRAME_MINUTES:
        raise InvalidInput(f"unknown timeframe {timeframe!r}", field="timeframe")
    if timeframe != timeframes[0]:
        raise InvalidInput(
            f"the strategy's base timeframe is {timeframes[0]}; evaluate on it (got {timeframe})",
            field="timeframe",
        )
    history = data.get("history") or {}
    start = parse_bound(body.get("start") or history.get("start"), "start")
    end = parse_bound(body.get("end") or history.get("end"), "end")
    if start is not None and end is not None and start >= end:
        raise InvalidInput("end must be after start", field="end")
    scheme = body.get("scheme") or "expanding"
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise InvalidInput(f"scheme must be one of {', '.join(SCHEMES)}", field="scheme")
    test_bars = _optional_int(body, "test_bars", MIN_TEST_BARS, MAX_BARS)
    fraction = body.get("test_fraction")
    fraction = (
        None if fraction in (None, "") else bounded_float(fraction, "test_fraction", 0.01, 0.5)
    )
    if test_bars is not None and fraction is not None:
        raise InvalidInput("give test_bars or test_fraction, not both", field="test_fraction")
    gap = default_gap(config["labels"])
    purge = _optional_int(body, "purge_bars", 0, MAX_GAP_BARS)
    embargo = _optional_int(body, "embargo_bars", 0, MAX_GAP_BARS)
    horizon = label_horizon(config["labels"])
    if purge is not None and horizon is not None and purge < horizon:
        raise InvalidInput(
            f"purge_bars must be at least the label horizon ({horizon} bars)", field="purge_bars"
        )
    raw_boot = body.get("bootstrap")
    if raw_boot in (None, ""):
        raw_boot = {}
    if not isinstance(raw_boot, dict):
        raise InvalidInput("bootstrap must be an object", field="bootstrap")
    unknown = sorted(set(raw_boot) - {"resamples", "confidence", "seed"})
    if unknown:
        raise InvalidInput(f"unknown bootstrap key {unknown[0]!r}", field=f"bootstrap.{unknown[0]}")
    default_seed = int(config["model"]["training"]["seed"])
    return {
        "symbol": symbol.upper(),
        "timeframe": timeframes[0],
        "timeframes": timeframes,
        "start": start.isoformat() if start is not None else None,
        "end": end.isoformat() if end is not None else None,
        "folds": bounded_int(_given(body.get("folds"), FOLDS_DEFAULT), "folds", *FOLDS_RANGE),
        "scheme": scheme,
        "train_bars": _optional_int(body, "train_bars", MIN_TRAIN_BARS, MAX_BARS),
        "test_bars": test_bars,
        "test_fraction": fraction,
        "purge_bars": gap if purge is None else purge,
        "embargo_bars": gap if embargo is None else embargo,
        "seeds": seed_list(body.get("seeds"), default_seed),
        "epochs": _optional_int(body, "epochs", *EPOCHS_RANGE),
        "bootstrap": {
            "resamples": bounded_int(
                _given(raw_boot.get("resamples"), DEFAULT_RESAMPLES),
                "bootstrap.resamples",
                *RESAMPLES_RANGE,
            ),
            "confidence": bounded_float(
                _given(raw_boot.get("confidence"), DEFAULT_CONFIDENCE),
                "bootstrap.confidence",
                *CONFIDENCE_RANGE,
            ),
            "seed": bounded_int(
                _given(raw_boot.get("seed"), DEFAULT_BOOTSTRAP_SEED),
                "bootstrap.seed",
                0,
                MAX_SEED,
            ),
        },
    }
