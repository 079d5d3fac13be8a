"""PacingLimiter under a fake clock: it never lets a request through that breaks a rule."""

from __future__ import annotations

import random

import pytest

from marketdata.pacing import PacingLimiter, PacingRules


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        self.now += seconds
        return False


def violations(sent: list[tuple[float, str, tuple]], rules: PacingRules) -> list[str]:
    """Check a request log against IB's rules, independently of the limiter's own code."""
    found = []
    for i, (t, contract, request) in enumerate(sent):
        window = [s for s in sent[: i + 1] if s[0] > t - rules.window_seconds]
        if len(window) > rules.max_requests:
            found.append(f"{i}: {len(window)} requests within {rules.window_seconds}s")
        same_contract = [
            s for s in sent[: i + 1] if s[1] == contract and s[0] > t - rules.per_contract_window
        ]
        if len(same_contract) > rules.per_contract_max:
            found.append(f"{i}: {len(same_contract)} for {contract} within 2s")
        identical = [s for s in sent[:i] if s[2] == request and s[0] > t - rules.identical_interval]
        if identical:
            found.append(f"{i}: identical request within {rules.identical_interval}s")
    return found


@pytest.mark.parametrize("seed", range(5))
def test_limiter_never_allows_a_violating_request_under_a_fake_clock(seed):
    rng = random.Random(seed)
    clock = FakeClock()
    rules = PacingRules()
    limiter = PacingLimiter(rules, clock=clock)
    sent = []
    for _ in range(400):
        contract = rng.choice(["EURUSD", "AAPL", "SPY"])
        # Few distinct requests so identical repeats happen often.
        request = (contract, rng.randrange(8))
        limiter.acquire(contract, request, clock.sleep)
        sent.append((clock.now, contract, request))
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.5, 3.0])
    assert violations(sent, rules) == []
    # 400 requests at ≤ 60 per 10 minutes take at least (400/60 - 1) windows.
    assert sent[-1][0] - sent[0][0] >= 600 * (400 // 60 - 1)


def test_sixty_first_request_waits_for_the_ten_minute_window():
    clock = FakeClock()
    limiter = PacingLimiter(PacingRules(), clock=clock)
    for i in range(60):
        limiter.acquire(f"C{i % 20}", i, clock.sleep)  # spread over contracts: no 2 s rule
        clock.now += 1.0
    delay = limiter.delay("NEW", "new")
    # The first request was at t=1000; 60 seconds have passed since.
    assert delay == pytest.approx(600 - 60)


def test_identical_request_waits_fifteen_seconds():
    clock = FakeClock()
    limiter = PacingLimiter(PacingRules(), clock=clock)
    limiter.acquire("EURUSD", "req", clock.sleep)
    clock.now += 5
    assert limiter.delay("EURUSD", "req") == pytest.approx(10)
    assert limiter.delay("EURUSD", "other") <= 0


def test_sixth_request_for_a_contract_within_two_seconds_waits():
    clock = FakeClock()
    limiter = PacingLimiter(PacingRules(), clock=clock)
    for i in range(5):
        limiter.acquire("AAPL", i, clock.sleep)
    assert limiter.delay("AAPL", 99) == pytest.approx(2.0)
    assert limiter.delay("MSFT", 99) <= 0


def test_aborted_wait_raises_and_records_nothing():
    clock = FakeClock()
    limiter = PacingLimiter(PacingRules(max_requests=1), clock=clock)
    limiter.acquire("A", 1, clock.sleep)
    with pytest.raises(InterruptedError):
        limiter.acquire("B", 2, lambda seconds: True)
    assert limiter.requests_sent == 1


def test_reserve_is_atomic_across_threads_sharing_one_limiter():
    # A frozen clock: exactly `max_requests` reservations may succeed, however many threads race.
    import threading

    clock = FakeClock()
    limiter = PacingLimiter(PacingRules(max_requests=60, per_contract_max=1000), clock=clock)
    start = threading.Barrier(8)
    granted: list[int] = []

    def race(worker: int) -> None:
        start.wait()
        for i in range(50):
            if limiter.reserve(f"C{worker}", (worker, i)) == 0.0:
                granted.append(i)

    threads = [threading.Thread(target=race, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(granted) == limiter.requests_sent == 60
    assert limiter.budget() == {"used": 60, "limit": 60}
    assert limiter.delay("NEW", "new") == pytest.approx(600)


def test_shared_limiter_is_one_object_per_endpoint_and_keeps_history_when_rules_change():
    from marketdata.pacing import forget_shared_limiters, shared_limiter

    forget_shared_limiters()
    try:
        a = shared_limiter(("127.0.0.1", 4002), PacingRules())
        a.record("EURUSD", "r1")
        b = shared_limiter(("127.0.0.1", 4002), PacingRules(max_requests=10))
        assert b is a
        assert b.rules.max_requests == 10
        assert b.budget() == {"used": 1, "limit": 10}
        assert shared_limiter(("127.0.0.1", 4003)) is not a
    finally:
        forget_shared_limiters()
