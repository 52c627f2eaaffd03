"""``send()`` and ``RelayClient`` against the fake relay: storing, errors, retries, outages."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tests.fakes.fake_relay import FakeRelay
from userstatus_client import (
    RelayClient,
    RelayRejectedError,
    RelayUnavailableError,
    RetryPolicy,
    send,
)
from userstatus_client.http_api import check_base_url

FAST = RetryPolicy(retries=3, backoff=0.01, max_backoff=0.05)


def test_send_returns_what_the_relay_stored(relay: FakeRelay) -> None:
    stored = send("tst", "Slewing to M31", "warning", timestamp=1604514063.5, url=relay.url)

    assert (stored.site, stored.message, stored.log_level) == ("tst", "Slewing to M31", "warning")
    assert stored.timestamp == 1604514063.5
    assert stored.id == relay.records[0].id
    assert stored.extra == {"ttl": 1604514063 + 86400}
    assert relay.messages("tst") == ["Slewing to M31"]


@pytest.mark.parametrize(
    ("level", "stored_level"),
    [("WARN", "warning"), ("Fatal", "critical"), (logging.ERROR, "error"), (25, "info")],
)
def test_send_accepts_level_names_aliases_and_numbers(
    relay: FakeRelay, level: str | int, stored_level: str
) -> None:
    assert send("tst", "m", level, url=relay.url).log_level == stored_level


def test_send_rejects_an_unknown_level_before_sending(relay: FakeRelay) -> None:
    with pytest.raises(ValueError, match="unknown log level 'verbose'"):
        send("tst", "m", "verbose", url=relay.url)
    assert relay.newlog_attempts == 0


def test_send_uses_the_url_from_the_environment(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERSTATUS_URL", relay.url + "/")
    send("tst", "from the environment")
    assert relay.messages() == ["from the environment"]


def test_4xx_raises_at_once_with_the_servers_message(relay: FakeRelay) -> None:
    with pytest.raises(RelayRejectedError) as raised:
        send("not a site!", "hello", url=relay.url, retry=FAST)

    assert raised.value.status == 400
    assert "site must be 1-64 letters" in raised.value.server_message
    assert "site must be 1-64 letters" in str(raised.value)
    assert relay.newlog_attempts == 1


def test_413_is_not_retried(relay: FakeRelay) -> None:
    relay.fail_next(1, 413, "request body too large")
    with pytest.raises(RelayRejectedError, match=r"HTTP 413.*request body too large"):
        send("tst", "big", url=relay.url, retry=FAST)
    assert relay.newlog_attempts == 1


def test_5xx_is_retried_until_it_succeeds(relay: FakeRelay) -> None:
    relay.fail_next(1, 500, "internal error")
    relay.fail_next(1, 503, "throughput exceeded", retry_after="0")

    stored = send("tst", "third time lucky", url=relay.url, retry=FAST)

    assert stored.message == "third time lucky"
    assert relay.newlog_attempts == 3
    assert relay.messages() == ["third time lucky"]


def test_5xx_retries_are_bounded(relay: FakeRelay) -> None:
    relay.fail_next(10, 500, "internal error")
    with pytest.raises(RelayUnavailableError) as raised:
        send("tst", "never stored", url=relay.url, retry=RetryPolicy(retries=2, backoff=0.01))

    assert raised.value.attempts == 3
    assert raised.value.status == 500
    assert "internal error (request_id fake-request-id)" in str(raised.value)
    assert relay.newlog_attempts == 3


def test_throttling_429_is_retried(relay: FakeRelay) -> None:
    relay.fail_next(1, 429, "Too Many Requests")
    assert send("tst", "after throttling", url=relay.url, retry=FAST).message == "after throttling"


def test_retry_after_sets_the_wait_within_the_cap(relay: FakeRelay) -> None:
    waits: list[float] = []
    relay.fail_next(2, 503, "throttled", retry_after="0.3")
    policy = RetryPolicy(retries=3, backoff=0.01, max_backoff=0.2)

    with RelayClient(relay.url, retry=policy, sleep=waits.append) as client:
        client.send("tst", "m")

    assert waits == [0.2, 0.2]  # Retry-After 0.3 s, capped by max_backoff


def test_connection_errors_are_retried_a_bounded_number_of_times(relay: FakeRelay) -> None:
    relay.stop()
    waits: list[float] = []
    with (
        RelayClient(relay.url, retry=RetryPolicy(retries=4, backoff=0.1), sleep=waits.append) as c,
        pytest.raises(RelayUnavailableError, match="after 5 attempt") as raised,
    ):
        c.send("tst", "nobody listening")

    assert "ConnectionRefusedError" in raised.value.reason
    assert raised.value.status is None
    assert len(waits) == 4
    assert all(0.05 <= w <= 0.1 * 2**i for i, w in enumerate(waits))


def test_send_succeeds_when_the_relay_comes_back_during_the_retries(relay: FakeRelay) -> None:
    # Given a relay that is down and comes back up on the same port 0.3 s later
    relay.stop()
    restart = threading.Timer(0.3, relay.start)
    restart.start()
    try:
        # When sending with enough retries to span the outage
        stored = send(
            "tst",
            "back up",
            url=relay.url,
            retry=RetryPolicy(retries=20, backoff=0.05, max_backoff=0.1),
        )
    finally:
        restart.join()
    # Then the message is stored once
    assert stored.message == "back up"
    assert relay.messages() == ["back up"]


def test_a_kept_alive_connection_survives_a_relay_restart(relay: FakeRelay) -> None:
    with RelayClient(relay.url, retry=RetryPolicy(retries=0)) as client:
        client.send("tst", "before")
        relay.stop()
        relay.start()
        client.send("tst", "after")  # the stale connection is reopened, not a failure
    assert relay.messages() == ["before", "after"]


def test_recent_logs_and_online_users(relay: FakeRelay) -> None:
    now = time.time()
    relay.store("tst", "old", timestamp=now - 7200)
    relay.store("tst", "one", "warning", timestamp=now - 60)
    relay.store("tst", "two", timestamp=now - 30)
    relay.store("other", "elsewhere", timestamp=now - 30)

    with RelayClient(relay.url) as client:
        recent = client.recent_logs("tst", after_time=now - 3600)
        limited = client.recent_logs("tst", after_time=now - 3600, limit=1)
        online = client.online_users("tst")

    assert [(e.message, e.log_level) for e in recent] == [("one", "warning"), ("two", "info")]
    assert [e.message for e in limited] == ["one"]
    assert online == 0


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        RelayClient("ws://127.0.0.1:3001")


@pytest.mark.parametrize(
    ("url", "schemes", "base"),
    [
        ("http://127.0.0.1:3000/", ("http", "https"), "http://127.0.0.1:3000"),
        ("HTTPS://abc.execute-api.eu-west-1.amazonaws.com", ("http", "https"), None),
        ("wss://abc.execute-api.eu-west-1.amazonaws.com/prod", ("ws", "wss"), None),
        ("ws://[::1]:3001", ("ws", "wss"), None),
    ],
)
def test_check_base_url_accepts_base_urls(
    url: str, schemes: tuple[str, ...], base: str | None
) -> None:
    assert check_base_url(url, schemes) == (base or url)


def test_retry_policy_delays_grow_and_stay_capped() -> None:
    policy = RetryPolicy(retries=10, backoff=0.5, max_backoff=4.0)
    for index in range(10):
        delay = policy.delay(index)
        assert min(0.25 * 2**index, 4.0) <= delay <= min(0.5 * 2**index, 4.0)
