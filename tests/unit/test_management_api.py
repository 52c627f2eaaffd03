"""The fan-out client against a fake management API over real loopback HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from botocore.credentials import Credentials

from tests.fakes.management_api import FakeManagementApi
from userstatus import management_api
from userstatus.management_api import ConnectionPoster


@pytest.fixture
def poster(management_api: FakeManagementApi) -> Iterator[ConnectionPoster]:
    poster = ConnectionPoster(
        management_api.endpoint,
        region="us-east-1",
        credentials=lambda: Credentials("AKIDEXAMPLE", "secret", "token"),
        concurrency=8,
    )
    yield poster
    poster.close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(management_api, "BACKOFF_SECONDS", 0.001)


def test_posts_the_payload_once_to_every_connection(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    ids = [f"conn{i}=" for i in range(50)]
    result = poster.post_to_all(ids, b'{"m": 1}')
    assert result.delivered == 50
    assert sorted(cid for cid, _, _ in management_api.posts) == sorted(ids)
    assert all(body == b'{"m": 1}' for _, body, _ in management_api.posts)


def test_requests_are_sigv4_signed_for_execute_api(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    poster.post_to_all(["a/b+c="], b"{}")
    [(connection_id, _, headers)] = management_api.posts
    assert connection_id == "a/b+c="
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/execute-api/aws4_request" in authorization
    assert headers["X-Amz-Security-Token"] == "token"


def test_gone_connections_are_reported_not_retried(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    management_api.gone = {"old="}
    result = poster.post_to_all(["old=", "new="], b"{}")
    assert (result.delivered, result.gone, result.failed) == (1, ["old="], [])
    assert len(management_api.posts_to("old=")) == 1


def test_5xx_posts_are_retried_a_bounded_number_of_times(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    management_api.statuses = {"slow=": [429, 500, 200], "broken=": [500]}
    result = poster.post_to_all(["slow=", "broken=", "fine="], b"{}")
    assert result.delivered == 2
    assert result.failed == ["broken="]
    assert len(management_api.posts_to("slow=")) == 3
    assert len(management_api.posts_to("broken=")) == management_api_attempts()
    assert result.throttled == 1


def test_throttled_posts_are_retried_past_the_attempt_limit_until_taken(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    # Given a post throttled more times than MAX_ATTEMPTS (a broadcast past the account's burst)
    throttles = 3 * management_api_attempts()
    management_api.statuses = {"busy=": [429] * throttles + [200]}
    result = poster.post_to_all(["busy=", "fine="], b"{}")
    # Then it is tried until it is taken, and the 429s are counted
    assert (result.delivered, result.failed, result.throttled) == (2, [], throttles)
    assert len(management_api.posts_to("busy=")) == throttles + 1


def test_throttled_posts_stop_at_the_deadline(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    management_api.statuses = {"busy=": [429]}
    result = poster.post_to_all(["busy="], b"{}", deadline=time.monotonic() + 0.3)
    assert (result.delivered, result.failed) == (0, ["busy="])
    assert result.throttled >= management_api_attempts()


def test_forbidden_is_not_retried(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    management_api.statuses = {"x=": [403]}
    assert poster.post_to_all(["x="], b"{}").failed == ["x="]
    assert len(management_api.posts_to("x=")) == 1


def test_a_connection_closed_before_answering_is_retried(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    management_api.hang_up["flaky="] = 1
    result = poster.post_to_all(["flaky="], b'{"n": 1}')
    assert result.delivered == 1
    assert management_api.posts_to("flaky=") == [b'{"n": 1}']


def test_an_unreachable_endpoint_fails_every_post_without_raising() -> None:
    poster = ConnectionPoster(
        "http://127.0.0.1:9/dev",
        region="us-east-1",
        credentials=lambda: Credentials("a", "b"),
        concurrency=2,
    )
    result = poster.post_to_all(["a=", "b="], b"{}")
    poster.close()
    assert (result.delivered, sorted(result.failed)) == (0, ["a=", "b="])


def test_no_connections_posts_nothing(
    poster: ConnectionPoster, management_api: FakeManagementApi
) -> None:
    assert poster.post_to_all([], json.dumps({}).encode()).delivered == 0
    assert management_api.posts == []


def management_api_attempts() -> int:
    return management_api.MAX_ATTEMPTS


@pytest.mark.parametrize("tries", [1, 2, 5, 20])
def test_a_throttled_post_waits_at_most_the_throttle_cap(tries: int) -> None:
    # The account's bucket refills continuously: a long wait after a 429 leaves tokens unused.
    delays = [management_api.retry_delay(tries, throttled=True) for _ in range(200)]
    assert max(delays) <= management_api.MAX_THROTTLED_BACKOFF_SECONDS


def test_a_failed_post_backs_off_up_to_the_longer_cap() -> None:
    delays = [management_api.retry_delay(20, throttled=False) for _ in range(200)]
    assert max(delays) > management_api.MAX_THROTTLED_BACKOFF_SECONDS
    assert max(delays) <= management_api.MAX_BACKOFF_SECONDS
