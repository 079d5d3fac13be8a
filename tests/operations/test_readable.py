"""Operation pages read as sentences and labelled fields, never as Python reprs: parameters,
context and results as fields, where the work ran as a sentence, a finished run's outcome, one
colour per status, humane durations."""

from __future__ import annotations

import re

import pytest

from operations.countdown import countdown_start
from operations.local import local_runs
from operations.readable import fields_html, humane_duration, placement_html
from tests.fakes.workers import GatedWork, launch

pytestmark = pytest.mark.django_db(transaction=True)


def _live(html: str) -> str:
    """The live section, from just after its id (its class, carrying the status colour, first)."""
    return html.split('id="operation-live"', 1)[1].split("</section>", 1)[0]


def test_a_finished_countdown_page_shows_labelled_fields_and_its_outcome(logged_in, user):
    op = countdown_start(steps=3, step_seconds=0.0, user=user, execution_mode="local")
    assert local_runs.wait_idle(10)

    page = logged_in.get(f"/operations/{op.operation_id}/").content.decode()

    assert "{'" not in page
    assert "placement=" not in page
    assert "<dt>Steps</dt><dd>3</dd>" in page
    assert "<dt>Step seconds</dt><dd>0.0 s</dd>" in page
    assert "<dd>this backend (local execution, asked for)</dd>" in page
    live = _live(page)
    # The outcome, not the last progress message; the bar takes the status's colour.
    assert re.search(r'id="operation-outcome">Completed in \d+\.\d s</span>', live)
    assert "step 3/3" not in live
    assert live.startswith(' class="card status-completed"')
    assert "ETA" not in live
    # The result as fields too.
    assert "<dt>Steps</dt><dd>3</dd>" in live


def test_a_failed_run_says_failed_and_why(logged_in, user):
    op = countdown_start(steps=3, step_seconds=0.0, fail_at=2, user=user, execution_mode="local")
    assert local_runs.wait_idle(10)

    live = _live(logged_in.get(f"/operations/{op.operation_id}/").content.decode())
    assert 'id="operation-outcome">Failed: CountdownFailure: simulated failure at step 2' in live
    assert live.startswith(' class="card status-failed"')

    listing = logged_in.get("/operations/").content.decode()
    assert "Failed: CountdownFailure: simulated failure at step 2" in listing


def test_a_cancelled_run_says_cancelled(logged_in, user):
    op = countdown_start(steps=1000, step_seconds=0.05, user=user, execution_mode="local")
    resp = logged_in.post(f"/operations/{op.operation_id}/cancel/")
    assert resp.status_code == 302
    assert local_runs.wait_idle(10)
    live = _live(logged_in.get(f"/operations/{op.operation_id}/").content.decode())
    assert 'id="operation-outcome">Cancelled</span>' in live
    assert live.startswith(' class="card status-cancelled"')


def test_a_running_operation_shows_its_message_and_no_outcome(logged_in):
    work = GatedWork()
    op = launch(work)
    assert work.started.wait(10)
    live = _live(logged_in.get(f"/operations/{op.operation_id}/").content.decode())
    assert "operation-outcome" not in live
    assert live.startswith(' class="card status-running"')
    work.release.set()
    assert local_runs.wait_idle(10)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.42, "0.4 s"),
        (31.24, "31.2 s"),
        (59.97, "1 min 0 s"),
        (72, "1 min 12 s"),
        (7500, "2 h 5 min"),
        (3 * 86_400 + 4 * 3600, "3 d 4 h"),
        (None, ""),
        ("x", ""),
        (float("nan"), ""),
        (-1, ""),
    ],
)
def test_durations_read_humanely(seconds, text):
    assert humane_duration(seconds) == text


def test_any_json_value_reads_as_labelled_fields():
    html = str(
        fields_html(
            {
                "start": "2024-01-02T00:00:00+00:00",
                "recorded": "2024-01-02T03:04:05+00:00",
                "artifact_bytes": 2_500_000,
                "wait_seconds": 72,
                "symbols": ["EURUSD", "GBPUSD"],
                "pacing": {"used": 6, "limit": 60},
                "last_epoch": {"kind": "epoch", "recorded_at": 1796151223.54, "epoch": 3},
                "val_accuracy": 0.3372,
                "empty": [],
                "flag": True,
                "bars": 88385,
            }
        )
    )
    assert "{'" not in html
    assert "['" not in html
    assert "<dt>Start</dt><dd>2024-01-02</dd>" in html
    assert "<dt>Recorded</dt><dd>2024-01-02 03:04:05 UTC</dd>" in html
    assert "<dt>Artifact bytes</dt><dd>2.4\xa0MB</dd>" in html
    assert "<dt>Wait seconds</dt><dd>1 min 12 s</dd>" in html
    assert "<dt>Symbols</dt><dd>EURUSD, GBPUSD</dd>" in html
    assert "<dt>Used</dt><dd>6</dd><dt>Limit</dt><dd>60</dd>" in html
    # A record: what it measured, not its kind and stamp.
    assert "<dt>Epoch</dt><dd>3</dd>" in html
    assert "recorded_at" not in html.lower()
    assert "Recorded at" not in html
    assert "<dt>Val accuracy</dt><dd>33.7 %</dd>" in html
    assert "<dt>Empty</dt><dd>none</dd>" in html
    assert "<dt>Flag</dt><dd>yes</dd>" in html
    assert "<dt>Bars</dt><dd>88,385</dd>" in html


def test_fields_escape_what_they_show_and_stay_bounded():
    deep: dict = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    html = str(fields_html({"x": "<script>", "deep": deep, "many": list(range(50))}))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "1 fields" in html
    assert "… and 30 more" in html


def test_placement_reads_as_a_sentence_with_the_agents_tried_folded_away():
    remote = placement_html(
        {
            "place": "agent",
            "agent": "gpu-1",
            "execution_mode": "auto",
            "reason": "auto: agent gpu-1 has the training role with a GPU",
            "tried": ["gpu-0: unreachable (HTTPConnectionPool(host='x'): refused)"],
        }
    )
    assert str(remote).startswith(
        "agent <strong>gpu-1</strong> (auto mode: it has the training role with a GPU) "
    )
    assert '<details class="raw"><summary>1 agent tried first</summary>' in remote
    assert "HTTPConnectionPool(host=&#x27;x&#x27;)" in remote.split("<details", 1)[1]
    here = placement_html(
        {
            "place": "local",
            "agent": "",
            "execution_mode": "auto",
            "reason": "auto: running locally",
            "tried": [],
        }
    )
    assert str(here) == "this backend (local execution, auto mode)"
    assert str(placement_html("garbage")) == ""
