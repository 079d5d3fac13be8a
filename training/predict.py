"""Re-load a saved model and predict on new bars with exactly the features it was trained on.

The artifact carries the resolved strategy and the feature spec (names, timeframes, training-set
means and deviations); features are recomputed by the same `training.features` functions the
executor used, then normalised with the stored figures. Loading uses `weights_only=True`; the
file holds CPU tensors whatever device trained it. Predictions run on `device` (default `cpu`;
pass the executor's device to score exactly as its evaluation did) and come back as NumPy.

No Django; torch imported inside functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from training.artifacts import load_artifact
from training.features import apply_normalisation, compute_features
from training.labels import SIGNAL_NAMES, Signal
from training.model import build_mlp


class ModelPredictor:
    """A loaded model ready to score bars."""

    def __init__(self, bundle: dict[str, Any], *, device: Any = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.config: dict[str, Any] = bundle["config"]
        self.spec: dict[str, Any] = bundle["feature_spec"]
        self.metadata: dict[str, Any] = bundle.get("metadata", {})
        m = self.config["model"]
        self.model = build_mlp(
            len(self.spec["names"]),
            len(SIGNAL_NAMES),
            hidden_layers=m["hidden_layers"],
            dropout=m["dropout"],
            activation=m["activation"],
        )
        self.model.load_state_dict(bundle["state_dict"])
        self.model.to(self.device)
        self.model.eval()

    @classmethod
    def from_file(
        cls, path: Path, *, expected_sha256: str | None = None, device: Any = "cpu"
    ) -> ModelPredictor:
        return cls(load_artifact(Path(path), expected_sha256=expected_sha256), device=device)

    @property
    def timeframes(self) -> list[str]:
        return list(self.spec["timeframes"])

    def features(
        self, bars_by_timeframe: dict[str, pd.DataFrame], symbol: str = ""
    ) -> pd.DataFrame:
        """Normalised features on the base timeframe (warm-up rows dropped)."""
        missing = [tf for tf in self.timeframes if tf not in bars_by_timeframe]
        if missing:
            raise ValueError(f"bars for timeframe(s) {', '.join(missing)} are needed")
        frame, _close, _warmup = compute_features(
            self.config, symbol or "bars", bars_by_timeframe, self.timeframes
        )
        if list(frame.columns) != list(self.spec["names"]):
            raise ValueError("recomputed features do not match the model's feature spec")
        x = apply_normalisation(frame.to_numpy(), self.spec["means"], self.spec["stds"])
        return pd.DataFrame(x, index=frame.index, columns=frame.columns)

    def predict(self, bars_by_timeframe: dict[str, pd.DataFrame], symbol: str = "") -> pd.DataFrame:
        """Per base bar: class probabilities (`p_BUY`, `p_HOLD`, `p_SELL`) and `signal` name."""
        import torch

        x = self.features(bars_by_timeframe, symbol)
        with torch.no_grad():
            logits = self.model(torch.tensor(x.to_numpy(), device=self.device))
            probs = torch.softmax(logits, dim=1).cpu().numpy()
            # The class is the argmax of the logits, exactly as the executor evaluates it.
            classes = logits.argmax(1).cpu().numpy()
        out = pd.DataFrame(probs, index=x.index, columns=[f"p_{n}" for n in SIGNAL_NAMES])
        out["class"] = classes
        out["signal"] = [Signal(int(c)).name for c in classes]
        return out
