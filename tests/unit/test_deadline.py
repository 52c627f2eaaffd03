"""DynamoDB calls that fit in the invocation's time, against a DynamoDB that never answers.

Lambda stops a function at its timeout, and API Gateway then answers a bare 500 (a broadcaster
batch is replayed whole). The fake endpoint accepts connections and reads requests but never
answers, the worst a slow DynamoDB does: each handler must still answer (503 with Retry-After,
or the batch's records reported for retry) before the time its context gives it runs out.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.events import load_event
from tests.fakes.lambda_context import FakeLambdaContext
from userstatus import broadcast, deadline, http_api, websocket_api
from userstatus.runtime import runtime


class SilentEndpoint:
    """A TCP server on 127.0.0.1 that takes requests and never answers them."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.requests = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> SilentEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
        self._server.close()
        for held in self._held:
            held.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._server.accept()
            except OSError:
                return
            self._held.append(connection)
            if connection.recv(65536):
                self.requests += 1


@pytest.fixture
def silent_dynamodb(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentEndpoint]:
    with SilentEndpoint() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", endpoint.url)
        runtime.cache_clear()
        yield endpoint


def timed(handler: Any, event: dict[str, Any], remaining_ms: int) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    response = handler(event, FakeLambdaContext(remaining_millis=remaining_ms))
    return response, time.monotonic() - started


def test_a_post_answers_503_before_the_function_times_out(
    silent_dynamodb: SilentEndpoint,
) -> None:
    # Given a function with 6 s left and a DynamoDB that takes the request and never answers
    response, took = timed(http_api.handler, load_event("http_post_newlog"), 6_000)
    # Then it answers the documented 503 with Retry-After, within its time
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "1"
    assert json.loads(response["body"]) == {"error": "message store unavailable, retry later"}
    assert took < 6.0
    # having tried once: a second attempt could not have failed in the time left
    assert silent_dynamodb.requests == 1


def test_no_attempt_starts_that_could_outlast_the_function(
    silent_dynamodb: SilentEndpoint,
) -> None:
    # Given too little time left for one attempt to fail and still answer
    left_ms = int(deadline.ATTEMPT_NEEDS_SECONDS * 1000) - 100
    response, took = timed(http_api.handler, load_event("http_get_recent_logs"), left_ms)
    # Then it answers 503 at once, sending nothing
    assert response["statusCode"] == 503
    assert silent_dynamodb.requests == 0
    assert took < 1.0


def test_a_websocket_connect_is_refused_with_503_before_the_function_times_out(
    silent_dynamodb: SilentEndpoint,
) -> None:
    response, took = timed(websocket_api.handler, load_event("ws_connect"), 6_000)
    assert response["statusCode"] == 503
    assert took < 6.0


def test_the_broadcaster_reports_its_record_for_retry_before_it_times_out(
    silent_dynamodb: SilentEndpoint,
) -> None:
    # Given a broadcaster with 8 s left (5 of them kept to report the batch)
    event = load_event("stream_insert")
    response, took = timed(broadcast.handler, event, 8_000)
    # Then the record whose connections could not be read is reported, within the time
    sequence_numbers = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == sequence_numbers
    assert took < 8.0


def test_calls_outside_an_invocation_have_no_deadline() -> None:
    assert deadline.seconds_left() is None

    @deadline.within_time
    def handler(event: object, context: object) -> float | None:
        return deadline.seconds_left()

    left = handler({}, FakeLambdaContext(remaining_millis=10_000))
    assert left is not None
    assert 9.0 < left <= 10.0
    assert deadline.seconds_left() is None
