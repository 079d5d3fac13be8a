"""The backtest engine on hand-made prices: exact equity, exact costs, no look-ahead, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.engine import (
    Costs,
    Simulation,
    Sizing,
    classes_to_signal,
    momentum_signal,
    position_sizes,
    signals_to_held,
    zigzag_direction_known,
)

CLOSE = np.array([100.0, 101.0, 99.0, 102.0, 102.0, 100.0])
SIGNAL = np.array([1.0, 1.0, 0.0, -1.0, -1.0, 0.0])
INDEX = pd.date_range("2024-01-01", periods=len(CLOSE), freq="h", tz="UTC")


def simulate(signal=SIGNAL, close=CLOSE, costs=None, chunk=None, bpy=8760.0):
    held = signals_to_held(signal, np.ones(len(close)))
    index = pd.date_range("2024-01-01", periods=len(close), freq="h", tz="UTC")
    sim = Simulation(index, close, held, costs=costs or Costs(), bars_per_year=bpy)
    if chunk is None:
        return sim.run()
    while sim.done < sim.n:
        sim.advance(chunk)
    return sim


def test_a_hand_made_signal_gives_the_exact_equity_curve():
    sim = simulate()
    # Held: the signal of the bar before (next-bar execution).
    assert sim.held.tolist() == [0.0, 1.0, 1.0, 0.0, -1.0, -1.0]
    gross = [0.0, 101 / 100 - 1, 99 / 101 - 1, 0.0, 0.0, -(100 / 102 - 1)]
    assert sim.net.tolist() == pytest.approx(gross, abs=0, rel=1e-15)
    assert sim.equity.tolist() == pytest.approx(np.cumprod(1 + np.array(gross)), rel=1e-14)
    assert sim.equity[2] == pytest.approx(0.99, rel=1e-14)  # 101/100 · 99/101


def test_chunks_change_nothing():
    whole, chunked = simulate(), simulate(chunk=2)
    assert chunked.equity.tolist() == whole.equity.tolist()
    assert chunked.figures() == whole.figures()


@pytest.mark.parametrize(
    ("costs", "per_change"),
    [
        (Costs(cost_bps=2.0), lambda fill: 2e-4),
        (Costs(cost_bps=1.5, slippage_bps=0.5), lambda fill: 2e-4),
        (Costs(cost_pips=1.0, pip_size=0.0001), lambda fill: 0.0001 / fill),
        (Costs(cost_pips=0.5, slippage_pips=0.5, pip_size=0.01), lambda fill: 0.01 / fill),
    ],
)
def test_costs_lower_the_return_by_cost_times_each_position_change(costs, per_change):
    free, paid = simulate(), simulate(costs=costs)
    # Position changes at bars 1 (0→1), 3 (1→0), 4 (0→-1), each filled at the close before.
    changes = [1, 3, 4]
    expected = np.zeros(len(CLOSE))
    for t in changes:
        expected[t] = per_change(CLOSE[t - 1])
    assert (free.net - paid.net).tolist() == pytest.approx(expected.tolist(), rel=1e-12, abs=1e-18)
    assert paid.figures()["costs_paid"] == pytest.approx(expected.sum(), rel=1e-12)
    assert paid.figures()["position_changes"] == len(changes)
    assert paid.equity[-1] == pytest.approx(np.prod(1 + free.net - expected), rel=1e-14)


def test_a_flip_trades_two_units_and_pays_twice():
    sim = simulate(signal=np.array([1.0, -1.0, -1.0, 0.0, 0.0, 0.0]), costs=Costs(cost_bps=10))
    assert sim.traded.tolist() == [0.0, 1.0, 2.0, 0.0, 1.0, 0.0]
    assert sim.figures()["turnover"] == 4.0


def test_a_signal_at_t_takes_effect_from_t_plus_one_only():
    base = simulate()
    for k in range(len(CLOSE) - 1):
        flipped = SIGNAL.copy()
        flipped[k] = -flipped[k] if flipped[k] else 1.0
        other = simulate(signal=flipped)
        # Bars up to and including k are untouched by a change of the signal decided at k.
        assert other.net[: k + 1].tolist() == base.net[: k + 1].tolist()
        assert other.held[k + 1] != base.held[k + 1]


def test_rules_and_sizes_use_only_bars_up_to_t():
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 400)))
    full_zz = zigzag_direction_known(close, 0.01)
    full_mom = momentum_signal(close, 12)
    full_size = position_sizes(close, Sizing(method="volatility", lookback=20), 8760)
    assert set(np.unique(full_zz)) <= {-1.0, 0.0, 1.0}
    assert np.count_nonzero(full_zz) > 300
    for k in range(5, 400, 37):
        cut = close[: k + 1]
        assert zigzag_direction_known(cut, 0.01).tolist() == full_zz[: k + 1].tolist()
        assert momentum_signal(cut, 12).tolist() == full_mom[: k + 1].tolist()
        sizes = position_sizes(cut, Sizing(method="volatility", lookback=20), 8760)
        assert sizes == pytest.approx(full_size[: k + 1], rel=1e-12)


def test_volatility_sizing_targets_the_volatility_and_caps_leverage():
    rng = np.random.default_rng(11)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 3000)))
    sizes = position_sizes(close, Sizing(method="volatility", target_vol=0.1, lookback=50), 8760)
    assert sizes[:50].tolist() == [0.0] * 50  # not known before `lookback` returns
    # Realised vol per bar 0.001 → 0.0936 a year: about 1.07 × for a 10 % target.
    assert np.median(sizes[50:]) == pytest.approx(0.1 / (0.001 * np.sqrt(8760)), rel=0.1)
    capped = position_sizes(
        close, Sizing(method="volatility", target_vol=5.0, lookback=50, max_leverage=2.0), 8760
    )
    assert capped[50:].max() == 2.0


def test_trades_figures_and_drawdown_of_the_hand_made_run():
    sim = simulate(costs=Costs())
    trades = sim.trades()
    assert [(t["direction"], t["bars"], t["open"]) for t in trades] == [
        ("long", 2, False),
        ("short", 2, True),
    ]
    assert trades[0]["entry_price"] == 100.0
    assert trades[0]["exit_price"] == 99.0
    assert trades[0]["return"] == pytest.approx(-0.01, rel=1e-12)
    f = sim.figures(trades)
    assert f["trades"] == 2
    assert f["hit_rate"] == 0.0
    assert f["max_drawdown"] == pytest.approx(1 - 0.99 / 1.01, rel=1e-12)
    assert f["max_drawdown_bars"] == 4
    assert f["longest_drawdown_bars"] == 4
    assert f["exposure"] == pytest.approx(4 / 6)
    assert f["total_return"] == pytest.approx(sim.equity[-1] - 1)
    assert f["calmar"] == pytest.approx(f["annualised_return"] / f["max_drawdown"])


def test_a_trade_pays_its_entry_and_exit():
    sim = simulate(signal=np.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0]), costs=Costs(cost_bps=10))
    (trade,) = sim.trades()
    # The entry cost comes off the first bar's return, the exit cost off the trade's end.
    assert trade["return"] == pytest.approx((1.01 - 1e-3) * (99 / 101) * (1 - 1e-3) - 1, rel=1e-12)


def test_a_random_walk_has_a_sharpe_interval_containing_zero():
    rng = np.random.default_rng(2024)
    n = 20_000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    index = pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC")
    for signal in (np.ones(n), momentum_signal(close, 24)):
        held = signals_to_held(signal, np.ones(n))
        f = Simulation(index, close, held, costs=Costs(), bars_per_year=8760).run().figures()
        assert f["sharpe_ci95_low"] < 0 < f["sharpe_ci95_high"]
        assert f["sharpe_ci95_low"] < f["sharpe"] < f["sharpe_ci95_high"]


def test_hold_keeps_or_flattens_the_position():
    classes = ["HOLD", "BUY", "HOLD", "SELL", "HOLD"]
    assert classes_to_signal(classes).tolist() == [0, 1, 1, -1, -1]
    assert classes_to_signal(classes, on_hold="flat").tolist() == [0, 1, 0, -1, 0]


def test_the_curve_is_bounded_and_keeps_the_last_bar_and_the_trough():
    rng = np.random.default_rng(3)
    n = 5000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    index = pd.date_range("2020-01-01", periods=n, freq="h", tz="UTC")
    sim = Simulation(index, close, np.ones(n), costs=Costs(), bars_per_year=8760).run()
    picks = sim.curve_picks(200)
    assert len(picks) <= 201
    assert picks[-1] == n - 1
    assert int(sim.drawdown().argmin()) in picks
    curve = sim.curve(picks)
    assert min(curve["drawdown"]) == pytest.approx(-sim.figures()["max_drawdown"])
