"""What a viewer costs: pages, fragments and API answers against Django's floor.

Each figure is the median thread CPU of one request through Django's test client (the whole
middleware stack, the session and the database, in this thread), next to the floor measured in
the same run (`benchmarks.urls.floor`: a logged-in check and a tiny `JsonResponse`). Budgets are
ratios, so a loaded machine moves both sides alike.

Runs on the configured database; `python -m benchmarks views` runs it again on PostgreSQL +
Redis when they answer (benchmarks.setup.on_postgres).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

if __package__ in {None, ""}:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.setup import bench_label, django_ready, on_postgres

Row = tuple[str, str, str]

RUNNING = 10


def cpu_per_request(
    client, url: str, *, headers: dict | None = None, n: int = 150, budget_s: float = 3.0
) -> float:
    """Median thread CPU seconds of one GET, after a few warm-up requests: `n` samples, or fewer
    (at least 7) once they have cost `budget_s` of CPU. Fails on an answer that isn't 2xx."""
    headers = headers or {}
    for _ in range(3):
        client.get(url, headers=headers)
    samples: list[float] = []
    while len(samples) < n and (len(samples) < 7 or sum(samples) < budget_s):
        t0 = time.thread_time()
        response = client.get(url, headers=headers)
        samples.append(time.thread_time() - t0)
        if response.status_code >= 300:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
    return statistics.median(samples)


def _seed_metrics(op, count: int) -> None:
    from django.utils import timezone

    from operations.models import Operation, OperationMetric

    now = timezone.now()
    OperationMetric.objects.bulk_create(
        [
            OperationMetric(
                operation_id=op.pk,
                seq=i,
                kind="step",
                recorded_at=now,
                payload={"step": i, "remaining": count - i},
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    Operation.objects.filter(pk=op.pk).update(metrics_cursor=count, remote_metrics_cursor=0)


def _seed_operations(count: int) -> None:
    from django.utils import timezone

    from operations.models import Operation, OperationStatus

    now = timezone.now()
    # In batches of their own: one long write transaction would lock SQLite's running writers out.
    for first in range(0, count, 5000):
        Operation.objects.bulk_create(
            [
                Operation(
                    operation_id=f"op_bench_{i:07d}",
                    operation_type="countdown" if i % 3 else "data_load",
                    status=OperationStatus.COMPLETED,
                    created_at=now - timezone.timedelta(minutes=i + 1),
                    result_summary={"steps": 10},
                )
                for i in range(first, min(first + 5000, count))
            ]
        )


def _cursor_of(op_id: str) -> int:
    from operations.models import Operation

    return Operation.objects.only("metrics_cursor").get(operation_id=op_id).metrics_cursor


def measure() -> list[Row]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.test.utils import override_settings

    from operations.countdown import countdown_start
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
        floor = cpu_per_request(client, "/bench/floor/")
        rows.append((f"{label} floor: logged-in JsonResponse", f"{floor * 1e3:.2f} ms CPU", ""))

        htmx = {"HX-Request": "true", "HX-Target": "operation-live"}

        def fragment(op) -> float:
            url = f"/operations/{op.operation_id}/?cursor={_cursor_of(op.operation_id)}"
            return cpu_per_request(client, url, headers=htmx)

        f_small, f_large = fragment(small), fragment(large)
        rows.append(
            (
                f"{label} detail fragment, 100 / 10,000 metric records",
                f"{f_small * 1e3:.2f} / {f_large * 1e3:.2f} ms "
                f"({f_large / f_small:.2f}×; {f_large / floor:.2f}× floor)",
                "≤ 1.2× and ≤ 2× floor",
            )
        )
        api_one = cpu_per_request(client, f"/api/v1/operations/{small.operation_id}/")
        rows.append(
            (
                f"{label} one operation over the API (session)",
                f"{api_one * 1e3:.2f} ms ({api_one / floor:.2f}× floor)",
                "≤ 1.3× floor",
            )
        )

        list_htmx = {"HX-Request": "true", "HX-Target": "operations-table"}
        page_few = cpu_per_request(client, "/operations/", n=60)
        table_few = cpu_per_request(client, "/operations/", headers=list_htmx, n=60)
        _seed_operations(100_000)
        page_many = cpu_per_request(client, "/operations/", n=60)
        table_many = cpu_per_request(client, "/operations/", headers=list_htmx, n=60)
        total = Operation.objects.count()
        rows.append(
            (
                f"{label} list page, ~{RUNNING + 2} / {total:,} operations",
                f"{page_few * 1e3:.2f} / {page_many * 1e3:.2f} ms ({page_many / page_few:.2f}×)",
                "≤ 1.5×",
            )
        )
        rows.append(
            (
                f"{label} list fragment, ~{RUNNING + 2} / {total:,} operations",
                f"{table_few * 1e3:.2f} / {table_many * 1e3:.2f} ms "
                f"({table_many / table_few:.2f}×; {table_many / floor:.2f}× floor)",
                "≤ 1.5×",
            )
        )
    for op in running:
        operation_cancel(operation_id=op.operation_id, reason="bench finished", user=user)
    local_runs.wait_idle(30)
    return rows


def run() -> list[Row]:
    django_ready()
    return measure() + on_postgres("views")


if __name__ == "__main__":
    from benchmarks.setup import main_child

    main_child(measure)
