"""Every read of the training app: strategy files and trained models."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marketdata.models import BarSeries
from operations.conf import ktrdr_setting
from operations.exceptions import InvalidInput, NotFound
from operations.selectors import MAX_OFFSET
from training.models import TrainedModel
from training.strategy import NAME_RE, StrategyFile, read_strategy_file

MAX_MODEL_LIST_LIMIT = 500


def strategies_dir() -> Path:
    return Path(ktrdr_setting("STRATEGIES_DIR"))


def models_dir() -> Path:
    return Path(ktrdr_setting("MODELS_DIR"))


def checkpoints_root() -> Path:
    return Path(ktrdr_setting("CHECKPOINTS_DIR", Path("var/checkpoints")))


def checkpoints_dir_for(operation_id: str) -> Path:
    """Where a training run of this process keeps its checkpoint (and where the checkpoint of
    one that ran on an agent is fetched to, to resume it)."""
    return checkpoints_root() / operation_id


def strategy_list() -> list[StrategyFile]:
    """Every `*.yaml` strategy, valid or not (an invalid one carries its error), by name."""
    directory = strategies_dir()
    if not directory.is_dir():
        return []
    files = sorted(
        p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"} and NAME_RE.match(p.stem)
    )
    return [read_strategy_file(p) for p in files]


def strategy_get(name: str) -> StrategyFile:
    """One strategy by name. The name is checked against a strict pattern before it touches the
    file system, so `../x` can never name a file outside the strategies directory."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidInput(f"{name!r} is not a strategy name (a-z, 0-9, _ or -)", field="strategy")
    directory = strategies_dir()
    for suffix in (".yaml", ".yml"):
        path = directory / f"{name}{suffix}"
        if path.is_file():
            return read_strategy_file(path)
    raise NotFound(
        f"strategy {name!r} does not exist in {directory.name}/", details={"strategy": name}
    )


@dataclass(frozen=True)
class ModelPage:
    models: list[TrainedModel]
    total: int


def trained_model_list(
    *, strategy: str | None = None, timeframe: str | None = None, limit: int = 50, offset: int = 0
) -> ModelPage:
    if limit < 1 or limit > MAX_MODEL_LIST_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_MODEL_LIST_LIMIT}", field="limit")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}", field="offset")
    qs = TrainedModel.objects.all()
    if strategy:
        qs = qs.filter(strategy_name=strategy)
    if timeframe:
        qs = qs.filter(timeframe=timeframe)
    return ModelPage(models=list(qs[offset : offset + limit]), total=qs.count())


def trained_model_get(*, model_id: int) -> TrainedModel:
    try:
        return TrainedModel.objects.get(pk=model_id)
    except (TrainedModel.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"model {model_id} does not exist", details={"model_id": model_id}) from None


def trained_model_file(model: TrainedModel) -> Path:
    """The artifact's absolute path; NotFound (not a 500) when the file has gone."""
    path = Path(model.artifact_path)
    if not path.is_absolute():
        path = models_dir() / path
    if not path.is_file():
        raise NotFound(
            f"the artifact of model {model.pk} ({model.label}) is missing: {path.name}",
            details={"model_id": model.pk},
        )
    return path


@dataclass(frozen=True)
class SuggestedRange:
    start: str
    end: str
    note: str


def suggested_training_range(config: dict[str, Any]) -> SuggestedRange:
    """Dates to pre-fill a start form with: the strategy's history where bars are stored for it,
    else the latest two years of what is stored (the demo's synthetic data is recent, the shipped
    strategies' histories are not), else the history as written with a hint to load data."""
    data = config.get("training_data") or {}
    history = data.get("history") or {}
    h_start, h_end = str(history.get("start") or "")[:10], str(history.get("end") or "")[:10]
    symbols = data.get("symbols") or []
    base = data.get("base_timeframe") or ""
    rows = list(BarSeries.objects.filter(symbol__in=symbols, timeframe=base, row_count__gt=0))
    if len(rows) < len(symbols) or not rows:
        missing = sorted(set(symbols) - {r.symbol for r in rows})
        return SuggestedRange(
            h_start, h_end, f"no stored {base} bars for {', '.join(missing)}: load them first"
        )
    first = max(r.first_timestamp for r in rows).date()
    last = min(r.last_timestamp for r in rows).date()
    if h_start and h_end and h_start <= last.isoformat() and h_end >= first.isoformat():
        start = max(h_start, first.isoformat())
        end = min(h_end, last.isoformat())
        return SuggestedRange(start, end, f"stored {base} bars cover {first} → {last}")
    start = max(first, last - datetime.timedelta(days=730))
    return SuggestedRange(
        start.isoformat(),
        last.isoformat(),
        f"the strategy's history ({h_start} → {h_end}) is not stored; "
        f"stored {base} bars cover {first} → {last}",
    )
