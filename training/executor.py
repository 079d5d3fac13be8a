"""TrainingExecutor: the one synchronous training path, wherever it runs.

load bars → indicators → features → split + labels → build model → train → evaluate → save.

The same class runs in a backend worker thread and in a host agent (docs/architecture.md §6);
only what is injected differs: `load_bars` (the market-data store here, bars that travelled with
the request on an agent), `models_dir`, the bridge and the cancellation token. No Django imports;
torch is imported inside `run`, which first waits for the process's torch warm-up
(`training.warmup`), so a process that trains pays for the import once, before its first run.

Guarantees:

* Progress: a phase per symbol, timeframe and indicator before training (no silent minute), a
  bridge write per batch, one epoch record per epoch; no sleeping, no pushing, no I/O per batch.
* Cancellation is checked before every batch and between all pre-training steps; it raises
  `OperationCancelled` at once, carrying the epoch history. A cancelled run saves no model.
* Numbered-step logging (`Step 3/8: building features for EURUSD`), the same text everywhere.
* Determinism: one seed drives initial weights, shuffling and dropout through a private
  `torch.Generator`, so the same seed and data give the same metrics and weights.
* Device: `device` ("auto" — CUDA when present, else CPU — or "cpu", "cuda", "cuda:N", "mps";
  see `training.device`) is resolved before anything is loaded; an unusable one fails the run
  at once with a `TrainingDeviceError` naming the problem. The model and the whole dataset move
  to the device once; each epoch the train split is shuffled into one copy there and batches
  are slices of it. Initial weights and the shuffle order come from the CPU generator on every
  device, dropout masks from a generator on the device. The optimiser uses torch's fused
  kernel on the CPU and on CUDA. On the CPU the batch loss is read per batch (there is no
  device to sync). On an accelerator no bridge write syncs the loop: the batch loss goes to the
  bridge as a 0-d device tensor (read, and synced, only when someone reads progress), the epoch
  loss is summed on the device and read once an epoch.
  Metrics are Python floats, the saved state dict is CPU tensors (loads anywhere with
  `weights_only=True`), and the device (`cuda:0 NVIDIA H100…`/`cpu`) is in the step log, the
  progress context and `result["training"]["device"]`.
* The model file is written atomically (no half-written model), after the last cancel check.
* Checkpoints (`training.checkpoint`, `docs/architecture.md` §15): with a `checkpoint_dir`, the
  state at an epoch boundary — model, optimiser, generators and process RNGs, best-so-far,
  early-stopping counter, history, metrics position — is written by `checkpoint_policy` (every
  N epochs or T seconds of `clock`) and on a cancel (the last finished epoch's state, kept in
  memory). Given a `resume_state`, the run restores all of it and trains the epochs after it
  only, ending bit-identical (on the CPU) to an uninterrupted run with the same seed.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketdata.store import read_bars
from operations.cancellation import CancellationToken, OperationCancelled
from operations.exceptions import NotFound
from training import evaluation
from training import features as feat
from training.artifacts import (
    ARTIFACT_SUFFIX,
    check_room_for_models,
    save_artifact,
    weights_sha256,
)
from training.bridge import TRAIN_END_PCT, TRAIN_START_PCT, TrainingProgressBridge
from training.checkpoint import (
    CheckpointError,
    CheckpointPolicy,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from training.dataset import SPLITS, Dataset, build_dataset
from training.device import describe_device, enable_cuda_determinism, resolve_device
from training.errors import TrainingDataError
from training.labels import NUM_CLASSES
from training.metrics import TrainingThroughput
from training.model import build_mlp, parameter_count, torch_threads
from training.strategy import TIMEFRAME_MINUTES, config_hash
from training.warmup import torch_ready

logger = logging.getLogger("training.executor")

LoadBars = Callable[[str, str, Any, Any], pd.DataFrame]
STEPS = 8
# Devices whose torch optimisers have a fused kernel (one per step, not a dozen ops per parameter).
FUSED_OPTIMIZER_DEVICES = ("cuda", "cpu")


def default_load_bars(symbol: str, timeframe: str, start: Any, end: Any) -> pd.DataFrame:
    """The market-data store of this process (an agent's runs read the bars sent with them)."""
    return read_bars(symbol, timeframe, start=start, end=end)


def _timestamp(value: Any) -> pd.Timestamp | None:
    if value in (None, ""):
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class TrainingExecutor:
    """Train one strategy on some symbols and timeframes; `run()` returns the result summary."""

    def __init__(
        self,
        *,
        config: dict[str, Any],
        symbols: list[str] | None = None,
        timeframes: list[str] | None = None,
        start: Any = None,
        end: Any = None,
        seed: int | None = None,
        models_dir: Path,
        run_id: str = "",
        load_bars: LoadBars | None = None,
        bridge: TrainingProgressBridge | None = None,
        token: CancellationToken | None = None,
        log: logging.Logger | None = None,
        num_threads: int | None = None,
        save: bool = True,
        device: str | None = "auto",
        min_free_bytes: int = 0,
        warning_thresholds: dict[str, Any] | None = None,
        checkpoint_dir: Path | None = None,
        checkpoint_policy: CheckpointPolicy | None = None,
        resume_state: dict[str, Any] | None = None,
        metrics_offset: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        data = config["training_data"]
        self.config = config
        self.symbols = list(symbols or data["symbols"])
        self.timeframes = sorted(timeframes or data["timeframes"], key=TIMEFRAME_MINUTES.get)
        self.start = _timestamp(start if start is not None else data["history"]["start"])
        self.end = _timestamp(end if end is not None else data["history"]["end"])
        self.seed = int(seed if seed is not None else config["model"]["training"]["seed"])
        self.models_dir = Path(models_dir)
        self.run_id = run_id or f"run_{time.strftime('%Y%m%d_%H%M%S')}"
        self.load_bars = load_bars or default_load_bars
        self.bridge = bridge or TrainingProgressBridge()
        self.token = token or CancellationToken()
        self.log = log or logger
        self.num_threads = torch_threads(num_threads)
        self.save = save
        self.min_free_bytes = int(min_free_bytes)
        # Keyword arguments of `evaluation.training_warnings` (its defaults when not given).
        self.warning_thresholds = dict(warning_thresholds or {})
        self.device_request = device
        # Resolved by run() (a torch.device) before any data is loaded.
        self.device: Any = None
        self.device_label = ""
        # The dataset stays on the device when it takes at most this share of its free memory;
        # otherwise batches are copied over one by one.
        self.resident_fraction = 0.5
        # Filled by run(): tests and the predictor check reproduce these.
        self.dataset: Dataset | None = None
        self.model: Any = None
        self.test_predictions: np.ndarray | None = None
        self.history: list[dict[str, Any]] = []
        # This run's share of the samples/s metric, recorded once per epoch (never per batch).
        self.throughput = TrainingThroughput()
        # Checkpoints (training.checkpoint): where, when, and the state a resumed run starts
        # from. `metrics_offset` is how many of the lineage's metric records the operation
        # already holds (copied from the run it resumes): records past it are emitted again.
        self.clock = clock
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_policy = checkpoint_policy or CheckpointPolicy(clock=clock)
        self.resume_state = resume_state
        self.metrics_offset = int(metrics_offset)
        self.checkpoint: dict[str, Any] | None = None
        # Epochs this executor itself trained (a resumed run skips those before its checkpoint).
        self.epochs_trained = 0
        # The epochs whose checkpoint this executor wrote, in order.
        self.checkpoints_written: list[int] = []

    # --- small helpers ----------------------------------------------------------------------
    def _step(self, number: int, text: str, phase: str, *, context: dict | None = None) -> None:
        message = f"Step {number}/{STEPS}: {text}"
        self.log.info("[%s] %s", self.run_id, message)
        if self.device_label:
            context = {"device": self.device_label, **(context or {})}
        # Pre-training steps share the first 5 % of the bar; evaluation and saving the last 5 %.
        if number <= 5:
            pct = TRAIN_START_PCT * (number - 1) / 5
        else:
            pct = TRAIN_END_PCT + (100.0 - TRAIN_END_PCT) * (number - 7) / 2
        self.bridge.on_phase(
            phase,
            message,
            step=number - 1,
            steps_total=STEPS,
            percentage=max(pct, 0.0),
            context=context,
        )

    def _check_cancel(self, where: str) -> None:
        if self.token.is_cancelled:
            raise OperationCancelled(where, self._partial())

    def _partial(self) -> dict[str, Any]:
        partial: dict[str, Any] = {
            "epochs_completed": len(self.history),
            "history": list(self.history),
            "model_saved": False,
        }
        if self.checkpoint is not None:
            partial["checkpoint"] = {
                k: self.checkpoint[k] for k in ("file", "sha256", "size", "epoch", "metrics_seq")
            }
        return partial

    # --- the path -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        name = self.config["name"]
        if self.save:
            # Before any epoch: a full or read-only models folder is said now, not after training.
            check_room_for_models(self.models_dir, self.min_free_bytes)
        self._resolve_device()
        self.log.info(
            "[%s] training %s on %s %s (%s to %s), seed %d, %d torch thread(s), device %s",
            self.run_id,
            name,
            ",".join(self.symbols),
            ",".join(self.timeframes),
            self.start.isoformat() if self.start is not None else "start",
            self.end.isoformat() if self.end is not None else "end",
            self.seed,
            self.num_threads,
            self.device_label,
        )
        bars = self._load()
        inputs = self._indicators(bars)
        per_symbol, warmups = self._features(bars, inputs)
        dataset = self._split(per_symbol)
        prepared = self._prepare(dataset)
        try:
            train_info = self._train(prepared)
        finally:
            self.throughput.end()
        evaluation = self._evaluate(prepared)
        artifact = self._save(prepared, train_info, evaluation, dataset, warmups)
        duration = round(time.monotonic() - started, 3)
        self.log.info("[%s] done in %.1f s", self.run_id, duration)
        return {
            "strategy": {"name": name, "config_hash": config_hash(self.config)},
            "data": self._data_summary(bars, dataset, warmups),
            "training": train_info,
            **evaluation,
            "model": artifact,
            "duration_seconds": duration,
        }

    # --- seams for walk-forward evaluation (`evaluation.runner`) -------------------------------
    # The evaluation trains one model per fold and seed with this same pipeline: the features
    # once for the whole series, then per fold a dataset of its ranges, fitted and scored here.
    def build_features(self) -> tuple[dict, dict[str, int]]:
        """Steps 1-3 (bars, indicators, features) for every symbol, without a split: per symbol
        (features, closes) after the warm-up, and the warm-up rows dropped."""
        self._resolve_device()
        bars = self._load()
        inputs = self._indicators(bars)
        return self._features(bars, inputs)

    def fit(self, dataset: Dataset) -> tuple[dict[str, Any], dict[str, Any]]:
        """Steps 5-6 on a given dataset: normalisation from its train split only, the model,
        the training loop (validation split for the best epoch). Returns (prepared, training
        info); cancellation raises `OperationCancelled` as in `run`."""
        self.dataset = dataset
        prepared = self._prepare(dataset)
        try:
            train_info = self._train(prepared)
        finally:
            self.throughput.end()
        return prepared, train_info

    def split_probabilities(
        self, prepared: dict[str, Any], split: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(true classes, softmax probabilities, predicted classes) of a fitted split."""
        import torch

        x, y = prepared["tensors"][split]
        logits = self._logits(prepared["model"], x)
        with torch.no_grad():
            probs = torch.softmax(logits.cpu().double(), dim=1).numpy()
            predicted = logits.argmax(1).cpu().numpy()
        return y.cpu().numpy(), probs, predicted

    def _resolve_device(self) -> Any:
        """Pick the device once (idempotent); raises `TrainingDeviceError` when unusable."""
        if self.device is None:
            # The first torch use of the run: waits for the process's warm-up (training.warmup).
            torch_ready()
            device = resolve_device(self.device_request)
            self.device_label = describe_device(device)
            self.device = device
        return self.device

    def _load(self) -> dict[str, dict[str, pd.DataFrame]]:
        bars: dict[str, dict[str, pd.DataFrame]] = {}
        for symbol in self.symbols:
            for tf in self.timeframes:
                self._check_cancel(f"loading {symbol} {tf}")
                self._step(1, f"loading bars for {symbol} {tf}", "loading_data")
                try:
                    frame = self.load_bars(symbol, tf, self.start, self.end)
                except OperationCancelled:
                    raise
                except NotFound as exc:
                    if tf == self.timeframes[0]:
                        raise TrainingDataError(f"loading bars {symbol} {tf}: {exc}") from exc
                    # A higher timeframe nobody stored is built from the base bars (UTC-aligned
                    # bins): the same prices, so the result is what a store would have held.
                    frame = feat.resample_bars(bars[symbol][self.timeframes[0]], tf)
                    self.log.info(
                        "[%s]   %s %s not stored; resampled from %s",
                        self.run_id,
                        symbol,
                        tf,
                        self.timeframes[0],
                    )
                except Exception as exc:
                    raise TrainingDataError(f"loading bars {symbol} {tf}: {exc}") from exc
                frame = feat.check_bars(frame, symbol, tf)
                if self.start is not None:
                    frame = frame[frame.index >= self.start]
                if self.end is not None:
                    frame = frame[frame.index <= self.end]
                if frame.empty:
                    raise TrainingDataError(
                        f"bars {symbol} {tf}: no bars between {self.start} and {self.end}"
                    )
                self.log.info(
                    "[%s]   %s %s: %d bars, %s to %s",
                    self.run_id,
                    symbol,
                    tf,
                    len(frame),
                    frame.index[0].isoformat(),
                    frame.index[-1].isoformat(),
                )
                bars.setdefault(symbol, {})[tf] = frame
        return bars

    def _indicators(self, bars: dict) -> dict[str, dict[str, pd.DataFrame]]:
        inputs: dict[str, dict[str, pd.DataFrame]] = {}
        needed = feat.needed_indicators(self.config)
        for symbol in self.symbols:
            for tf in self.timeframes:
                self._step(2, f"computing indicators for {symbol} {tf}", "indicators")

                def hook(ind_id: str, type_: str, _s: str = symbol, _tf: str = tf) -> None:
                    # A phase per indicator: a long series never looks stuck.
                    self._check_cancel(f"indicator {ind_id} for {_s} {_tf}")
                    position = needed.index(ind_id) + 1
                    self.bridge.on_phase(
                        "indicators",
                        f"Step 2/{STEPS}: computing indicators for {_s} {_tf} — "
                        f"{ind_id} ({type_}, {position}/{len(needed)})",
                    )

                inputs.setdefault(symbol, {})[tf] = feat.timeframe_inputs(
                    self.config, bars[symbol][tf], hook
                )
        return inputs

    def _features(self, bars: dict, inputs: dict) -> tuple[dict, dict[str, int]]:
        per_symbol: dict[str, tuple[pd.DataFrame, pd.Series]] = {}
        warmups: dict[str, int] = {}
        for symbol in self.symbols:
            self._check_cancel(f"features for {symbol}")
            self._step(3, f"building features for {symbol}", "features")
            frame, close, warmup = feat.symbol_features(
                self.config,
                symbol,
                inputs[symbol],
                bars[symbol][self.timeframes[0]],
                self.timeframes,
            )
            per_symbol[symbol] = (frame, close)
            warmups[symbol] = warmup
            self.log.info(
                "[%s]   %s: %d rows x %d features (%d warm-up rows dropped)",
                self.run_id,
                symbol,
                len(frame),
                frame.shape[1],
                warmup,
            )
        return per_symbol, warmups

    def _split(self, per_symbol: dict) -> Dataset:
        self._check_cancel("split")
        labels = self.config["labels"]
        self._step(4, f"splitting by time and labelling ({labels['type']})", "labelling")
        dataset = build_dataset(self.config, per_symbol)
        for split in SPLITS:
            part = dataset.splits[split]
            self.log.info(
                "[%s]   %s: %d samples %s", self.run_id, split, len(part), part.class_counts()
            )
        self.dataset = dataset
        return dataset

    def _prepare(self, dataset: Dataset) -> dict[str, Any]:
        import torch

        self._check_cancel("build model")
        device = self._resolve_device()
        m = self.config["model"]
        self._step(
            5,
            f"building model (mlp {m['hidden_layers']}, {m['activation']}) on {self.device_label}",
            "model",
        )
        torch.set_num_threads(self.num_threads)
        if device.type == "cuda":
            enable_cuda_determinism()
        kinds = feat.feature_kinds(self.config)
        names = dataset.feature_names
        means, stds = feat.normalisation(dataset.splits["train"].x, names, kinds)
        tensors = {}
        for split in SPLITS:
            part = dataset.splits[split]
            x = feat.apply_normalisation(part.x, means, stds)
            if not np.isfinite(x).all():
                raise TrainingDataError(f"{split} features contain NaN after normalisation")
            tensors[split] = (torch.from_numpy(x), torch.from_numpy(part.y))
        resident = self._move_dataset(tensors)
        # Initial weights and shuffle order: the CPU generator, on every device. Dropout masks
        # must be drawn on the model's device: the same generator on the CPU (unchanged
        # results), a device generator with the same seed elsewhere.
        generator = torch.Generator().manual_seed(self.seed)
        dropout_generator = (
            generator
            if device.type == "cpu"
            else torch.Generator(device=device).manual_seed(self.seed)
        )
        model = build_mlp(
            len(names),
            NUM_CLASSES,
            hidden_layers=m["hidden_layers"],
            dropout=m["dropout"],
            activation=m["activation"],
            generator=generator,
            dropout_generator=dropout_generator,
        ).to(device)
        counts = np.bincount(dataset.splits["train"].y, minlength=NUM_CLASSES)
        if m["training"]["class_weights"] == "balanced":
            # n / (k · count) for the classes present; an absent class gets weight 0 (no target).
            present = counts > 0
            weights = np.zeros(NUM_CLASSES)
            weights[present] = counts.sum() / (present.sum() * counts[present])
        else:
            weights = np.ones(NUM_CLASSES)
        self.model = model
        return {
            "tensors": tensors,
            "resident": resident,
            "generator": generator,
            "dropout_generator": dropout_generator,
            "model": model,
            "class_weights": torch.tensor(weights, dtype=torch.float32, device=device),
            "feature_spec": {
                "names": names,
                "kinds": {n: kinds[n.partition(":")[2]] for n in names},
                "means": means,
                "stds": stds,
                "symbols": self.symbols,
                "timeframes": self.timeframes,
                "base_timeframe": self.timeframes[0],
                "model_inputs": self.config["model_inputs"],
            },
        }

    def _move_dataset(self, tensors: dict[str, tuple[Any, Any]]) -> bool:
        """Move the splits to the device once when they fit; True when they are there.

        The train split stays on the CPU (batches copied over one by one) only when the whole
        dataset, plus the shuffled copy of the train split an epoch makes, would take more than
        `resident_fraction` of the device's free memory; the validation and test splits are
        always moved (they are scored in one pass each).
        """
        import torch

        device = self.device
        if device.type == "cpu":
            return True
        size = sum(t.element_size() * t.nelement() for pair in tensors.values() for t in pair)
        # Training also holds one shuffled copy of the train split there, one epoch at a time.
        shuffled = sum(t.element_size() * t.nelement() for t in tensors["train"])
        resident = True
        if device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(device)
            resident = size + shuffled <= self.resident_fraction * free
        for split, (x, y) in tensors.items():
            if resident or split != "train":
                tensors[split] = (x.to(device), y.to(device))
            else:
                tensors[split] = (x.pin_memory(), y.pin_memory())
        self.log.info(
            "[%s]   dataset %.1f MB %s %s",
            self.run_id,
            size / 1e6,
            "moved to" if resident else "(train split batched over) to",
            self.device_label,
        )
        return resident

    def _train(self, prepared: dict[str, Any]) -> dict[str, Any]:
        import torch
        from torch import nn

        t = self.config["model"]["training"]
        model = prepared["model"]
        gen = prepared["generator"]
        x_train, y_train = prepared["tensors"]["train"]
        x_val, y_val = prepared["tensors"]["validation"]
        device = self.device
        # CPU: the loss is read per batch as before (no device to sync). Elsewhere the loss stays
        # on the device: a 0-d tensor to the bridge, a device sum read once per epoch.
        on_cpu = device.type == "cpu"
        # Shuffle indices are drawn on the CPU and moved once an epoch when the data is there.
        index_device = device if prepared.get("resident", True) else None
        n = int(y_train.shape[0])
        batch_size = min(t["batch_size"], n)
        batches = math.ceil(n / batch_size)
        epochs = t["epochs"]
        stop = t["early_stopping"]
        patience = stop["patience"] if stop else None
        min_delta = stop["min_delta"] if stop else 0.0
        optimizer_cls = torch.optim.AdamW if t["optimizer"] == "adamw" else torch.optim.Adam
        # The fused kernel on CUDA and on the CPU: one kernel per step instead of a dozen ops per
        # parameter (the loop of a small MLP is bound by per-op overhead on both; on the CPU the
        # step took a third of the batch).
        extra = {"fused": True} if device.type in FUSED_OPTIMIZER_DEVICES else {}
        optimizer = optimizer_cls(
            model.parameters(), lr=t["learning_rate"], weight_decay=t["weight_decay"], **extra
        )
        criterion = nn.CrossEntropyLoss(weight=prepared["class_weights"])
        self._step(
            6, f"training {epochs} epoch(s) x {batches} batch(es) of {batch_size}", "training"
        )
        self.bridge.on_training_start(
            device=self.device_label,
            epochs=epochs,
            batches_per_epoch=batches,
            patience=patience,
            train_samples=n,
            batch_size=batch_size,
            step=5,
            steps_total=STEPS,
        )
        # Locals for the hot loop: an attribute lookup per batch is measurable at this size.
        on_batch = self.bridge.on_batch
        token = self.token
        best_loss, best_epoch, best_state = math.inf, 0, None
        patience_left = patience
        early_stopped = False
        fingerprint = {
            "config_hash": config_hash(self.config),
            "seed": self.seed,
            "train_samples": n,
            "features": int(x_train.shape[1]),
        }
        dropout_gen = prepared.get("dropout_generator")
        if dropout_gen is gen:
            dropout_gen = None
        start_epoch = 0
        if self.resume_state is not None:
            state = self.resume_state
            if state.get("fingerprint") != fingerprint:
                raise CheckpointError(
                    f"the checkpoint is of another run ({state.get('fingerprint')}); this run "
                    f"is {fingerprint}"
                )
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
            if dropout_gen is not None and state.get("dropout_generator") is not None:
                dropout_gen.set_state(state["dropout_generator"])
            restore_rng_states(state["rng"])
            best = state["best"]
            best_loss, best_epoch = best["loss"], best["epoch"]
            patience_left = best["patience_left"]
            if best["state"] is not None:
                best_state = {k: v.to(device) for k, v in best["state"].items()}
            start_epoch = int(state["epoch"])
            self.history = [dict(h) for h in state["history"]]
            # The records the operation lacks (its copy of the resumed run's stops at
            # `metrics_offset`): emitted again, so its curves have every epoch once.
            for record in self.history[self.metrics_offset :]:
                self.bridge.on_epoch(
                    record["epoch"],
                    record["train_loss"],
                    record["train_accuracy"],
                    record["val_loss"],
                    record["val_accuracy"],
                    record["learning_rate"],
                    record["duration_seconds"],
                    best_epoch,
                    patience_left,
                )
            self.log.info(
                "[%s]   resumed from the checkpoint of epoch %d (best epoch %d)",
                self.run_id,
                start_epoch,
                best_epoch,
            )
        policy = self.checkpoint_policy
        policy.start()
        # The state at the end of the last finished epoch, not yet written: a cancel mid-epoch
        # writes it, so the run resumes from the last epoch boundary it reached.
        unsaved: tuple[int, dict[str, Any]] | None = None
        train_started = time.perf_counter()
        epochs_run = start_epoch
        for epoch in range(start_epoch + 1, epochs + 1):
            epoch_started = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=gen)
            if index_device is not None and not on_cpu:
                order = order.to(index_device)
            # One shuffled copy per epoch, where the split is: a batch is then a slice of it (a
            # view, no gather of its own), and its predictions go to their slice of `predicted`.
            x_epoch, y_epoch = x_train[order], y_train[order]
            predicted = torch.empty(n, dtype=torch.int64, device=device)
            loss_sum: Any = 0.0 if on_cpu else torch.zeros((), device=device)
            for b in range(batches):
                if token.is_cancelled:
                    if unsaved is not None:
                        self._write_checkpoint(*unsaved)
                    raise OperationCancelled(
                        f"epoch {epoch} batch {b + 1}/{batches}", self._partial()
                    )
                lo = b * batch_size
                hi = min(lo + batch_size, n)
                xb, yb = x_epoch[lo:hi], y_epoch[lo:hi]
                if index_device is None:
                    xb = xb.to(device, non_blocking=True)
                    yb = yb.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                logits = model(xb)
                loss = criterion(logits, yb)
                loss.backward()
                optimizer.step()
                if on_cpu:
                    value = loss.item()
                    loss_sum += value * (hi - lo)
                else:
                    value = loss.detach()
                    loss_sum.add_(value, alpha=hi - lo)
                torch.argmax(logits, 1, out=predicted[lo:hi])
                on_batch(epoch, b + 1, value)
            train_loss = float(loss_sum) / n
            if not math.isfinite(train_loss):
                raise TrainingDataError(
                    f"training diverged: loss is {train_loss} in epoch {epoch}; lower "
                    "model.training.learning_rate"
                )
            if index_device is None:
                y_epoch = y_epoch.to(device)
            train_acc = int((predicted == y_epoch).sum()) / n
            # Freed now (the last batch is a view of it), not when the next epoch's copy is made:
            # one shuffled copy at a time.
            del x_epoch, y_epoch, predicted, xb, yb
            val_loss, val_acc = self._score(model, criterion, x_val, y_val)
            epochs_run = epoch
            self.epochs_trained += 1
            if val_loss < best_loss - min_delta:
                best_loss, best_epoch = val_loss, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                patience_left = patience
            elif patience_left is not None:
                patience_left -= 1
            duration = time.perf_counter() - epoch_started
            self.throughput.epoch(n, duration)
            lr = float(optimizer.param_groups[0]["lr"])
            self.bridge.on_epoch(
                epoch,
                train_loss,
                train_acc,
                val_loss,
                val_acc,
                lr,
                duration,
                best_epoch,
                patience_left,
            )
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "learning_rate": lr,
                "duration_seconds": round(duration, 4),
            }
            self.history.append(record)
            self.log.info(
                "[%s]   epoch %d/%d: train loss %.4f acc %.3f, val loss %.4f acc %.3f "
                "(best %d, patience left %s, %.2f s)",
                self.run_id,
                epoch,
                epochs,
                train_loss,
                train_acc,
                val_loss,
                val_acc,
                best_epoch,
                patience_left if patience_left is not None else "-",
                duration,
            )
            if patience_left is not None and patience_left <= 0:
                early_stopped = True
                self.log.info(
                    "[%s]   early stopping: no val_loss improvement for %d epoch(s)",
                    self.run_id,
                    patience,
                )
                break
            if self.checkpoint_dir is not None and epoch < epochs:
                unsaved = (
                    epoch,
                    self._checkpoint_state(
                        epoch,
                        model,
                        optimizer,
                        gen,
                        dropout_gen,
                        fingerprint,
                        best_loss,
                        best_epoch,
                        best_state,
                        patience_left,
                    ),
                )
                if policy.due(epoch):
                    self._write_checkpoint(*unsaved)
                    unsaved = None
        # Last chance to stop before anything is evaluated or saved: a cancel that arrived
        # during the final epoch still means "no model".
        if token.is_cancelled and unsaved is not None:
            self._write_checkpoint(*unsaved)
        self._check_cancel(f"after epoch {epochs_run}")
        if best_state is not None:
            model.load_state_dict(best_state)
        seconds = time.perf_counter() - train_started
        return {
            "epochs_planned": epochs,
            "epochs_run": epochs_run,
            "best_epoch": best_epoch,
            "best_val_loss": best_loss if math.isfinite(best_loss) else None,
            "early_stopped": early_stopped,
            "batch_size": batch_size,
            "batches_per_epoch": batches,
            "seconds": round(seconds, 3),
            "samples_per_second": round(n * epochs_run / seconds, 1) if seconds > 0 else None,
            "seed": self.seed,
            "torch_threads": self.num_threads,
            "device": self.device_label,
            "dataset_on_device": bool(prepared.get("resident", True)),
            "resumed_from_epoch": start_epoch,
            "epochs_trained": self.epochs_trained,
            "history": list(self.history),
        }

    def _checkpoint_state(  # noqa: PLR0917
        self,
        epoch: int,
        model: Any,
        optimizer: Any,
        gen: Any,
        dropout_gen: Any,
        fingerprint: dict[str, Any],
        best_loss: float,
        best_epoch: int,
        best_state: dict[str, Any] | None,
        patience_left: int | None,
    ) -> dict[str, Any]:
        """Everything the next epoch depends on, copied now (CPU tensors, plain values).

        One copy of the model and optimiser state per epoch while checkpoints are on: the
        price of resuming from the last epoch boundary whenever a cancel arrives."""

        def cpu(tensors: dict[str, Any]) -> dict[str, Any]:
            return {k: v.detach().to("cpu", copy=True) for k, v in tensors.items()}

        return {
            "fingerprint": dict(fingerprint),
            "epoch": epoch,
            "model": cpu(model.state_dict()),
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            # No learning-rate scheduler in this executor yet; the slot keeps the format.
            "scheduler": None,
            "generator": gen.get_state(),
            "dropout_generator": dropout_gen.get_state().cpu() if dropout_gen is not None else None,
            "rng": rng_states(),
            "best": {
                "loss": float(best_loss),
                "epoch": int(best_epoch),
                "state": cpu(best_state) if best_state is not None else None,
                "patience_left": patience_left,
            },
            "history": [dict(h) for h in self.history],
            # A training's metric records are its epochs, one each from seq 0 through the
            # lineage (a resumed run continues its parent's numbering): the next seq.
            "metrics_seq": len(self.history),
        }

    def _write_checkpoint(self, epoch: int, state: dict[str, Any]) -> None:
        assert self.checkpoint_dir is not None
        self.checkpoint = save_checkpoint(
            self.checkpoint_dir, state, epoch=epoch, metrics_seq=int(state["metrics_seq"])
        )
        self.checkpoint_policy.saved()
        self.checkpoints_written.append(epoch)
        self.log.info(
            "[%s]   checkpoint of epoch %d saved (%d bytes, sha256 %s)",
            self.run_id,
            epoch,
            self.checkpoint["size"],
            self.checkpoint["sha256"][:12],
        )

    @staticmethod
    def _logits(model: Any, x: Any, chunk: int = 65536) -> Any:
        """The model's logits for `x` on the model's device (eval mode, no grad)."""
        import torch

        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            if x.device == device:
                return model(x)
            # A split left on the CPU (too big for the device): scored in chunks, the logits
            # (3 floats a row) gathered on the device.
            return torch.cat(
                [
                    model(x[i : i + chunk].to(device, non_blocking=True))
                    for i in range(0, int(x.shape[0]), chunk)
                ]
            )

    @classmethod
    def _score(cls, model: Any, criterion: Any, x: Any, y: Any) -> tuple[float, float]:
        import torch

        logits = cls._logits(model, x)
        y = y.to(logits.device)
        with torch.no_grad():
            loss = float(criterion(logits, y))
            acc = float((logits.argmax(1) == y).float().mean()) if y.shape[0] else 0.0
        return loss, acc

    def _evaluate(self, prepared: dict[str, Any]) -> dict[str, Any]:
        import torch
        from torch import nn

        self._check_cancel("evaluate")
        self._step(7, "evaluating on the test split", "evaluating")
        model = prepared["model"]
        criterion = nn.CrossEntropyLoss(weight=prepared["class_weights"])
        weighted = self.config["model"]["training"]["class_weights"] == "balanced"
        dataset = self.dataset
        assert dataset is not None
        train_counts = np.bincount(dataset.splits["train"].y, minlength=NUM_CLASSES)
        metrics: dict[str, Any] = {}
        reports: dict[str, Any] = {}
        for split in SPLITS:
            x, y = prepared["tensors"][split]
            logits = self._logits(model, x)
            with torch.no_grad():
                loss = float(criterion(logits, y.to(logits.device)))
                probs = torch.softmax(logits.cpu().double(), dim=1).numpy()
                predicted = logits.argmax(1).cpu().numpy()
            truth = y.cpu().numpy()
            report = evaluation.split_report(truth, probs, train_counts, predicted)
            if split == "test":
                self.test_predictions = predicted
            reports[split] = report
            metrics[split] = {
                # The training criterion's value: class-weighted under `class_weights: balanced`.
                "loss": round(loss, 6),
                "loss_class_weighted": weighted,
                **{
                    k: report[k]
                    for k in (
                        "accuracy",
                        "samples",
                        "majority_class",
                        "majority_rate",
                        "accuracy_lift",
                        "log_loss",
                        "prior_log_loss",
                        "log_loss_lift",
                        "macro_f1",
                    )
                },
            }
        kinds = feat.feature_kinds(self.config)
        drift = evaluation.feature_drift(
            dataset.splits["train"].x, dataset.splits["test"].x, dataset.feature_names, kinds
        )
        warnings = evaluation.training_warnings(
            reports,
            drift,
            price_levels=feat.price_level_inputs(self.config),
            **self.warning_thresholds,
        )
        test = metrics["test"]
        self.log.info(
            "[%s]   test accuracy %.3f (majority %.3f, lift %+.3f), log-loss %.4f (prior %.4f, "
            "lift %+.4f), macro F1 %.3f (train acc. %.3f, validation %.3f)",
            self.run_id,
            test["accuracy"],
            test["majority_rate"],
            test["accuracy_lift"],
            test["log_loss"],
            test["prior_log_loss"],
            test["log_loss_lift"],
            test["macro_f1"],
            metrics["train"]["accuracy"],
            metrics["validation"]["accuracy"],
        )
        for warning in warnings:
            self.log.warning(
                "[%s]   warning %s: %s", self.run_id, warning["code"], warning["message"]
            )
        return {
            "metrics": metrics,
            "per_class": reports["test"]["per_class"],
            "confusion_matrix": reports["test"]["confusion_matrix"],
            "class_balance": {s: dataset.splits[s].class_counts() for s in SPLITS},
            "reports": reports,
            "feature_drift": drift,
            "warnings": warnings,
        }

    def _save(
        self,
        prepared: dict[str, Any],
        train_info: dict[str, Any],
        evaluation: dict[str, Any],
        dataset: Dataset,
        warmups: dict[str, int],
    ) -> dict[str, Any]:
        self._check_cancel("save")
        model = prepared["model"]
        state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        info = {
            "parameters": parameter_count(model),
            "weights_sha256": weights_sha256(state),
            "hidden_layers": self.config["model"]["hidden_layers"],
            "inputs": len(dataset.feature_names),
            "outputs": NUM_CLASSES,
        }
        if not self.save:
            return {**info, "artifact_path": None, "sha256": None, "size_bytes": None}
        base_tf = self.timeframes[0]
        path = self.models_dir / self.config["name"] / base_tf / f"{self.run_id}{ARTIFACT_SUFFIX}"
        self._step(8, f"saving model to {path.name}", "saving")
        bundle = {
            # Always CPU tensors: the file loads anywhere with weights_only=True.
            "state_dict": state,
            "config": self.config,
            "feature_spec": prepared["feature_spec"],
            "metadata": {
                "run_id": self.run_id,
                "strategy": self.config["name"],
                "config_hash": config_hash(self.config),
                "symbols": self.symbols,
                "timeframes": self.timeframes,
                "seed": self.seed,
                "device": self.device_label,
                "saved_at": time.time(),
                "metrics": evaluation["metrics"],
                "weights_sha256": info["weights_sha256"],
                "warnings": evaluation["warnings"],
                "best_epoch": train_info["best_epoch"],
                "warmup_rows": warmups,
                "boundaries": dataset.boundaries,
            },
        }
        digest, size = save_artifact(path, bundle)
        self.log.info("[%s]   saved %s (%d bytes, sha256 %s)", self.run_id, path, size, digest[:12])
        return {**info, "artifact_path": str(path), "sha256": digest, "size_bytes": size}

    def _data_summary(self, bars: dict, dataset: Dataset, warmups: dict[str, int]) -> dict:
        base = self.timeframes[0]
        firsts = [bars[s][base].index[0] for s in self.symbols]
        lasts = [bars[s][base].index[-1] for s in self.symbols]
        return {
            "symbols": self.symbols,
            "timeframes": self.timeframes,
            "base_timeframe": base,
            "start": min(firsts).isoformat(),
            "end": max(lasts).isoformat(),
            "bars": {s: {tf: len(bars[s][tf]) for tf in self.timeframes} for s in self.symbols},
            "warmup_rows": warmups,
            "samples": {s: len(dataset.splits[s]) for s in SPLITS},
            "unlabelled_rows": dataset.unlabelled_rows,
            "boundaries": dataset.boundaries,
            "features": len(dataset.feature_names),
            "feature_names": dataset.feature_names,
        }
