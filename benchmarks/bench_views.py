"""What a viewer costs: pages, fragments and API answers against Django's floor.

Each figure is the median thread CPU of one request through Django's test client (the whole
middleware stack, the session and the database, in this thread), next to the floor measured in
the same run (`benchmarks.urls.floor`: a logged-in check and a tiny `JsonResponse`). Budgets are
ratios, so a loaded machine moves both sides alike.

Runs on the configured database; `python -m benchmarks views` runs it again on PostgreSQL +
Redis when they answer (benchmarks.setup.on_postgres).
"""

from __future__ import annotations

import contextlib
import re
import statistics
import sys
import time
from pathlib import Path

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.setup import bench_label, django_ready, on_postgres

Row = tuple[str, str, str]

RUNNING = 10


class Viewer:
    """One GET a browser would repeat: a live fragment follows the cursor its answer gives."""

    CURSOR = re.compile(rb"\?cursor=(\d+)")

    def __init__(self, client, url: str, headers: dict | None = None) -> None:
        self.client, self.url, self.headers = client, url, headers or {}

    def get(self) -> float:
        """Thread CPU seconds of one request; fails on an answer that isn't 2xx."""
        t0 = time.thread_time()
        response = self.client.get(self.url, headers=self.headers)
        cpu = time.thread_time() - t0
        if response.status_code >= 300:
            raise RuntimeError(f"GET {self.url} answered {response.status_code}")
        if found := self.CURSOR.search(response.content):
            self.url = self.url.split("?", 1)[0] + "?cursor=" + found.group(1).decode()
        return cpu


def interleaved(viewers: dict[str, Viewer], *, rounds: int = 120, budget_s: float = 6.0) -> dict:
    """Median thread CPU per request of each viewer, asked in turn round after round (so a
    machine that gets busier mid-run weighs on every figure alike); fewer rounds (at least 9)
    once they have cost `budget_s`."""
    for viewer in viewers.values():
        for _ in range(3):
            viewer.get()
    samples: dict[str, list[float]] = {name: [] for name in viewers}
    spent = 0.0
    for done in range(rounds):
        for name, viewer in viewers.items():
            cpu = viewer.get()
            samples[name].append(cpu)
            spent += cpu
        if done >= 8 and spent > budget_s:
            break
    return {name: statistics.median(values) for name, values in samples.items()}


def _seed_metrics(op, count: int) -> None:
    """`count` records more on a running operation, numbered as its pulls number theirs (under
    the row lock a pull takes, so the two never collide)."""
    from django.db import transaction
    from django.utils import timezone

    from operations.models import Operation, OperationMetric

    now = timezone.now()
    with transaction.atomic():
        row = Operation.objects.select_for_update().get(pk=op.pk)
        first = row.metrics_cursor
        OperationMetric.objects.bulk_create(
            [
                OperationMetric(
                    operation_id=op.pk,
                    seq=first + i,
                    kind="step",
                    recorded_at=now,
                    payload={"step": i, "remaining": count - i},
                )
                for i in range(count)
            ],
            batch_size=2000,
        )
        Operation.objects.filter(pk=op.pk).update(metrics_cursor=first + count)


def _seed_operations(count: int, first: int = 0) -> None:
    from django.utils import timezone

    from operations.models import Operation, OperationStatus

    now = timezone.now()
    # In batches of their own: one long write transaction would lock SQLite's running writers out.
    for batch in range(first, first + count, 5000):
        Operation.objects.bulk_create(
            [
                Operation(
                    operation_id=f"op_bench_{i:07d}",
                    operation_type="countdown" if i % 3 else "data_load",
                    status=OperationStatus.COMPLETED,
                    created_at=now - timezone.timedelta(minutes=i + 1),
                    result_summary={"steps": 10},
                )
                for i in range(batch, min(batch + 5000, first + count))
            ]
        )


def _seed_runs(count: int, first: int = 0) -> None:
    """`count` finished training runs with their figures (the runs table's rows)."""
    from django.utils import timezone

    from operations.models import Operation, OperationStatus, RunFigure

    now = timezone.now()
    for batch in range(first, first + count, 2000):
        ops = Operation.objects.bulk_create(
            [
                Operation(
                    operation_id=f"op_training_bench_{i:07d}",
                    operation_type="training",
                    status=OperationStatus.COMPLETED,
                    created_at=now - timezone.timedelta(minutes=i + 1),
                    started_at=now - timezone.timedelta(minutes=i + 1),
                    completed_at=now - timezone.timedelta(minutes=i),
                    # Two strategies: the filtered table shows a full page at 50 runs as at 5,000.
                    strategy_name=f"bench_{i % 2}",
                    input_series=["EURUSD:1h"],
                    metadata={"symbols": ["EURUSD"], "timeframes": ["1h"]},
                    result_summary={"metrics": {}},
                )
                for i in range(batch, min(batch + 2000, first + count))
            ]
        )
        if not all(op.pk for op in ops):  # a backend without RETURNING: read them back
            ops = list(Operation.objects.filter(operation_id__in=[o.operation_id for o in ops]))
        RunFigure.objects.bulk_create(
            [
                RunFigure(operation=op, name=name, value=((op.pk * 7919) % 1000) / 1000 + k)
                for op in ops
                for k, name in enumerate(
                    ("test_accuracy", "best_val_accuracy", "final_loss", "duration_seconds")
                )
            ],
            batch_size=2000,
        )


def runs_costs(client) -> dict:
    table = {"HX-Request": "true", "HX-Target": "runs-table"}
    return interleaved(
        {
            "floor": Viewer(client, "/bench/floor/"),
            "created": Viewer(client, "/runs/", table),
            "figure": Viewer(client, "/runs/?sort=test_accuracy", table),
            "filtered": Viewer(client, "/runs/?sort=final_loss&order=asc&strategy=bench_1", table),
        },
        rounds=60,
    )


def runs_rows(label: str, client) -> list[Row]:
    """The runs table with 50 runs, then 5,000: sorted by date, by a figure, filtered."""
    from operations.models import Operation

    def runs() -> int:
        return Operation.objects.filter(operation_type="training").count()

    _seed_runs(50 - runs())
    few = runs_costs(client)
    _seed_runs(5_000 - runs(), first=50)
    many = runs_costs(client)
    rows: list[Row] = []
    for what, key in (
        ("newest first", "created"),
        ("sorted by a figure", "figure"),
        ("filtered, by a figure", "filtered"),
    ):
        growth = (many[key] / many["floor"]) / (few[key] / few["floor"])
        rows.append(
            (
                f"{label} runs table {what}, 50 / 5,000 runs",
                f"{few[key] * 1e3:.2f} / {many[key] * 1e3:.2f} ms ({growth:.2f}× against "
                f"the floor; {many[key] / many['floor']:.2f}× floor)",
                "≤ 1.5×",
            )
        )
    return rows


def _cursor_of(op_id: str) -> int:
    from operations.models import Operation

    return Operation.objects.only("metrics_cursor").get(operation_id=op_id).metrics_cursor


def measure() -> list[Row]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import override_settings

    from operations.countdown import countdown_start
    from operations.exceptions import IllegalTransition
    from operations.execution import operation_cancel
    from operations.local import local_runs

    label = bench_label()
    settings.KTRDR = {**settings.KTRDR, "LOCAL_WORKERS": RUNNING + 2}
    user = get_user_model().objects.create_user(username=f"bench-{time.time_ns()}", password="x")
    # Long countdowns, stepping every 0.2 s: the live operations viewers watch.
    running = [countdown_start(steps=100_000, step_seconds=0.2, user=user) for _ in range(RUNNING)]
    small, large = running[0], running[1]
    # Metrics already recorded: 100 on one, 10,000 on the other (both keep stepping). Written
    # before anyone pulls them (the first pull comes one TTL after the start), so their bridge's
    # records follow these.
    for op, count in ((small, 100), (large, 10_000)):
        _seed_metrics(op, count)
    from operations.models import Operation

    rows: list[Row] = []
    with override_settings(ROOT_URLCONF="benchmarks.urls"):
        client = Client()
        client.force_login(user)
        live = {"HX-Request": "true", "HX-Target": "operation-live"}
        table = {"HX-Request": "true", "HX-Target": "operations-table"}

        def fragment(op) -> Viewer:
            cursor = _cursor_of(op.operation_id)
            return Viewer(client, f"/operations/{op.operation_id}/?cursor={cursor}", live)

        got = interleaved(
            {
                "floor": Viewer(client, "/bench/floor/"),
                "small": fragment(small),
                "large": fragment(large),
            }
        )
        # An API client's polls, in a group of their own: beside page renders every request
        # runs with cold CPU caches, and the longer its code path the more that costs (the DRF
        # floor read 1.15-1.28× there, 1.08-1.12× here), which would judge the pages, not the
        # view. Small differences: many rounds (one costs ~3 ms).
        polls = interleaved(
            {
                "floor": Viewer(client, "/bench/floor/"),
                "api": Viewer(client, f"/api/v1/operations/{small.operation_id}/"),
                "drf": Viewer(client, "/bench/drf-floor/"),
            },
            rounds=600,
        )
        floor = got["floor"]
        rows.append((f"{label} floor: logged-in JsonResponse", f"{floor * 1e3:.2f} ms CPU", ""))
        rows.append(
            (
                f"{label} detail fragment, 100 / 10,000 metric records",
                f"{got['small'] * 1e3:.2f} / {got['large'] * 1e3:.2f} ms "
                f"({got['large'] / got['small']:.2f}×; {got['large'] / floor:.2f}× floor)",
                "≤ 1.2× and ≤ 2× floor",
            )
        )
        rows.append(
            (
                f"{label} one operation over the API (session)",
                f"{polls['api'] * 1e3:.2f} ms ({polls['api'] / polls['floor']:.2f}× floor; DRF's "
                f"own floor {polls['drf'] / polls['floor']:.2f}×)",
                "≤ 1.3× floor",
            )
        )

        def list_costs() -> dict:
            return interleaved(
                {
                    "floor": Viewer(client, "/bench/floor/"),
                    "page": Viewer(client, "/operations/"),
                    "table": Viewer(client, "/operations/", table),
                },
                rounds=60,
            )

        # 100 stored operations (10 of them running), then 100,000: each figure against the
        # floor measured beside it, so the ratio is the page's own growth.
        _seed_operations(100 - Operation.objects.count())
        few = list_costs()
        _seed_operations(100_000 - Operation.objects.count(), first=100)
        many = list_costs()
        total = Operation.objects.count()
        for what, key in (("list page", "page"), ("list fragment", "table")):
            growth = (many[key] / many["floor"]) / (few[key] / few["floor"])
            rows.append(
                (
                    f"{label} {what}, 100 / {total:,} operations",
                    f"{few[key] * 1e3:.2f} / {many[key] * 1e3:.2f} ms ({growth:.2f}× against "
                    f"the floor; {many[key] / many['floor']:.2f}× floor)",
                    "≤ 1.5×",
                )
            )
        rows.extend(runs_rows(label, client))
    for op in running:
        with contextlib.suppress(IllegalTransition):
            operation_cancel(operation_id=op.operation_id, reason="bench finished", user=user)
    local_runs.wait_idle(30)
    return rows


def run() -> list[Row]:
    django_ready()
    return measure() + on_postgres("views")


if __name__ == "__main__":
    from benchmarks.setup import main_child

    main_child(measure)
