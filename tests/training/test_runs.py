"""The runs table and the comparison page, over real training runs (small strategies)."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from operations import runs
from operations.countdown import countdown_start
from operations.execution import operation_cancel
from operations.kinds import run_kinds
from operations.local import local_runs
from operations.models import Operation, RunFigure
from tests.training.conftest import SMALL_STRATEGY
from training.services import training_start

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def three_runs(user, strategies_dir, models_dir, store_bars):
    """Two runs of `test_small` (different seeds), one of `test_other`, and a countdown."""
    other = copy.deepcopy(SMALL_STRATEGY)
    other["name"] = "test_other"
    other["model"]["hidden_layers"] = [8]
    other["model"]["training"]["epochs"] = 3
    (strategies_dir / "test_other.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    ops = [
        training_start(strategy="test_small", end="2017-04-01", seed=1, user=user),
        training_start(strategy="test_small", end="2017-04-01", seed=2, user=user),
        training_start(strategy="test_other", end="2017-04-01", user=user),
    ]
    countdown_start(steps=1, step_seconds=0, user=user)
    assert local_runs.wait_idle(timeout=120)
    done = [Operation.objects.get(pk=op.pk) for op in ops]
    assert [r.status for r in done] == ["completed"] * 3, [r.error_message for r in done]
    return done


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr id="run-(op_[a-z_0-9]+)"', html)


def test_runs_page_needs_login(client):
    assert client.get("/runs/")["Location"].startswith("/login/")
    assert client.get("/runs/compare/?ids=a&ids=b")["Location"].startswith("/login/")


def test_runs_table_lists_training_runs_with_their_figures(logged_in, three_runs):
    html = logged_in.get("/runs/").content.decode()
    # Newest first; the countdown is not a run.
    assert _ids(html) == [r.operation_id for r in reversed(three_runs)]
    assert 'href="/runs/"' in html  # the nav
    figures = {f.name for f in RunFigure.objects.filter(operation=three_runs[0])}
    assert {"best_val_accuracy", "test_accuracy", "final_loss", "duration_seconds"} <= figures
    test_acc = RunFigure.objects.get(operation=three_runs[0], name="test_accuracy").value
    assert test_acc == three_runs[0].result_summary["metrics"]["test"]["accuracy"]
    assert f"{100 * test_acc:.1f} %" in html
    # The kind column shows by default only when several kinds are runs (training, backtest).
    assert ("<th>Kind</th>" in html) == (len(run_kinds()) > 1)


def test_search_and_filters_give_the_right_rows(logged_in, three_runs):
    small = [r.operation_id for r in three_runs[:2]]
    other = three_runs[2].operation_id
    assert sorted(_ids(logged_in.get("/runs/?search=other").content.decode())) == [other]
    assert sorted(_ids(logged_in.get("/runs/?strategy=test_small").content.decode())) == sorted(
        small
    )
    by_id = logged_in.get(f"/runs/?search={small[1][-8:]}").content.decode()
    assert _ids(by_id) == [small[1]]
    assert len(_ids(logged_in.get("/runs/?symbol=EURUSD&timeframe=1h").content.decode())) == 3
    assert _ids(logged_in.get("/runs/?symbol=GBPUSD").content.decode()) == []
    assert _ids(logged_in.get("/runs/?timeframe=4h").content.decode()) == []
    assert _ids(logged_in.get("/runs/?status=failed").content.decode()) == []
    assert _ids(logged_in.get("/runs/?created_to=2000-01-01").content.decode()) == []
    today = three_runs[0].created_at.date().isoformat()
    assert len(_ids(logged_in.get(f"/runs/?created_from={today}").content.decode())) == 3


def test_sort_by_a_figure_both_ways(logged_in, three_runs):
    acc = {
        f.operation.operation_id: f.value
        for f in RunFigure.objects.filter(name="test_accuracy").select_related("operation")
    }
    descending = sorted(acc, key=lambda i: (-acc[i], i))
    html = logged_in.get("/runs/?sort=test_accuracy").content.decode()
    got = _ids(html)
    assert [acc[i] for i in got] == sorted(acc.values(), reverse=True)
    assert set(got) == set(descending)
    up = _ids(logged_in.get("/runs/?sort=test_accuracy&order=asc").content.decode())
    assert [acc[i] for i in up] == sorted(acc.values())
    dur = _ids(logged_in.get("/runs/?sort=duration_seconds&order=asc").content.decode())
    assert len(dur) == 3


def test_chosen_columns_stay_in_the_links(logged_in, three_runs):
    url = "/runs/?columns=strategy&columns=test_loss&sort=test_loss"
    html = logged_in.get(url).content.decode()
    assert "<th>Strategy</th>" in html
    assert "<th>Kind</th>" not in html
    assert ">test loss ↓</a>" in html
    # The sort link keeps the chosen columns (and flips the order).
    assert "sort=test_loss&amp;order=asc&amp;columns=strategy&amp;columns=test_loss" in html


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("sort=evil", "sort"),
        ("order=sideways", "order"),
        ("created_from=2024-13-01", "created_from"),
        ("created_from=2024-02-01&created_to=2024-01-01", "created_to"),
        ("columns=password", "columns"),
        ("page=0", "page"),
        ("page=99999999", "page"),
        ("symbol=%25%25", "symbol"),
        ("kind=countdown", "kind"),
        ("search=" + "x" * 101, "search"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(logged_in, query, field):
    resp = logged_in.get(f"/runs/?{query}")
    assert resp.status_code == 400
    assert f"{field}:" in resp.content.decode()


def test_the_table_fragment_has_an_etag_and_answers_304(logged_in, three_runs):
    headers = {"HX-Request": "true", "HX-Target": "runs-table"}
    first = logged_in.get("/runs/", headers=headers)
    assert first.status_code == 200
    assert first.content.decode().lstrip().startswith('<div id="runs-table"')
    # Nothing active: the fragment carries no poll URL.
    assert "data-poll-url" not in first.content.decode()
    again = logged_in.get("/runs/", headers={**headers, "If-None-Match": first["ETag"]})
    assert again.status_code == 304


def test_an_active_run_makes_the_table_poll(logged_in, user, strategies_dir, store_bars):
    op = training_start(strategy="test_slow", end="2017-04-01", user=user)
    try:
        html = logged_in.get("/runs/").content.decode()
        assert 'data-poll-url="/runs/"' in html
    finally:
        operation_cancel(operation_id=op.operation_id, reason="test over")
        assert local_runs.wait_idle(timeout=60)


def test_comparison_marks_differing_parameters_and_overlays_curves(logged_in, three_runs):
    a, b, c = (r.operation_id for r in three_runs)
    resp = logged_in.get(f"/runs/compare/?ids={a}&ids={b}&ids={c}")
    assert resp.status_code == 200
    html = resp.content.decode()
    params = re.findall(r'<tr class="(differs|same)"><th scope="row"><code>([^<]+)</code>', html)
    marked = {key for cls, key in params if cls == "differs"}
    same = {key for cls, key in params if cls == "same"}
    assert {"seed", "strategy", "strategy.model.hidden_layers"} <= marked
    assert {"symbols", "timeframes", "start", "end", "strategy.labels.threshold"} <= same
    # One chart per curve, each with one series per run, the points merged by epoch.
    data = re.search(
        r'id="chart-compare-val_accuracy" data-chart="([^"]+)".*?'
        r'<script type="application/json">(.*?)</script>',
        html,
        re.S,
    )
    config = json.loads(data.group(1).replace("&quot;", '"'))
    assert [s["key"] for s in config["series"]] == ["r0", "r1", "r2"]
    points = json.loads(data.group(2))
    assert [p["epoch"] for p in points] == list(range(1, 7))
    assert all(p.get("r2") is None for p in points[3:])  # test_other ran 3 epochs
    assert 'id="chart-compare-train_loss"' in html
    assert "Final figures" in html
    assert '<span class="tag">best</span>' in html


@pytest.mark.parametrize(
    "query",
    ["", "ids=op_a", "ids=" + ",".join(f"op_x{i}" for i in range(9)), "ids=op_a&ids=%3Cscript"],
)
def test_comparison_refuses_bad_id_lists_with_a_400(logged_in, query):
    resp = logged_in.get(f"/runs/compare/?{query}")
    assert resp.status_code == 400
    assert "flash error" in resp.content.decode()


def test_comparison_refuses_operations_that_are_not_runs(logged_in, three_runs, user):
    countdown = Operation.objects.get(operation_type="countdown").operation_id
    resp = logged_in.get(f"/runs/compare/?ids={three_runs[0].operation_id},{countdown}")
    assert resp.status_code == 400
    assert f"not a run: {countdown}" in resp.content.decode()


def test_pages_of_a_figure_sort_end_with_the_runs_that_lack_it(three_runs, user):

    slow = training_start(strategy="test_slow", end="2017-04-01", user=user)
    operation_cancel(operation_id=slow.operation_id, reason="test over")
    assert local_runs.wait_idle(timeout=60)
    assert not RunFigure.objects.filter(operation__pk=slow.pk, name="test_accuracy").exists()
    acc = {
        f.operation.operation_id: f.value
        for f in RunFigure.objects.filter(name="test_accuracy").select_related("operation")
    }
    best_first = sorted(acc, key=lambda i: -acc[i])
    seen = []
    for number in (1, 2, 3):
        q = runs.parse_query({"sort": "test_accuracy", "page": str(number)})
        page = runs.run_list(q, page_size=2)
        seen.extend(r.operation.operation_id for r in page.rows)
        assert page.has_next == (number == 1)
    assert [acc[i] for i in seen[:3]] == [acc[i] for i in best_first]
    assert seen[3] == slow.operation_id
    assert len(seen) == 4
    assert runs.run_list(runs.parse_query({"page": "2"}), page_size=2).total == 4
