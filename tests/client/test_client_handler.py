"""``UserStatusHandler``: non-blocking emit, formatting, levels, drops, outages and close."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator

import pytest

from tests.fakes.fake_relay import FakeRelay
from userstatus_client import HandlerStats, UserStatusHandler
from userstatus_client.handler import MAX_MESSAGE_BYTES


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A fresh logger that does not propagate to the root logger."""
    log = logging.getLogger(f"observatory.test.{time.monotonic_ns()}")
    log.setLevel(1)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def attach(logger: logging.Logger, handler: UserStatusHandler) -> UserStatusHandler:
    logger.addHandler(handler)
    return handler


def test_records_reach_the_relay_with_formatter_level_and_time(
    relay: FakeRelay, logger: logging.Logger
) -> None:
    handler = attach(logger, UserStatusHandler("tst", relay.url))
    handler.setFormatter(logging.Formatter("[%(name)s] %(levelname)s: %(message)s"))

    logger.warning("Slewing to %s", "M31")
    logger.log(25, "between info and warning")
    logger.log(5, "below debug")
    handler.close()

    records = relay.records
    assert [(r.message, r.log_level) for r in records] == [
        (f"[{logger.name}] WARNING: Slewing to M31", "warning"),
        (f"[{logger.name}] Level 25: between info and warning", "info"),
        (f"[{logger.name}] Level 5: below debug", "debug"),
    ]
    assert all(abs(r.timestamp - time.time()) < 60 for r in records)
    assert handler.stats().sent == 3


def test_the_handlers_level_filters_records(relay: FakeRelay, logger: logging.Logger) -> None:
    handler = attach(logger, UserStatusHandler("tst", relay.url, level=logging.WARNING))
    logger.info("not sent")
    logger.error("sent")
    handler.close()
    assert relay.messages() == ["sent"]


def test_tracebacks_are_sent_and_long_messages_truncated_to_the_relay_limit(
    relay: FakeRelay, logger: logging.Logger
) -> None:
    handler = attach(logger, UserStatusHandler("tst", relay.url))
    try:
        raise RuntimeError("dome stuck")
    except RuntimeError:
        logger.exception("dome failed")
    logger.info("é" * MAX_MESSAGE_BYTES)
    handler.close()

    traceback_message, long_message = relay.messages()
    assert traceback_message.startswith("dome failed\nTraceback")
    assert "RuntimeError: dome stuck" in traceback_message
    assert long_message.endswith("[truncated]")
    assert len(long_message.encode("utf-8")) <= MAX_MESSAGE_BYTES
    assert handler.stats().rejected == 0


def test_an_invalid_site_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="site must be"):
        UserStatusHandler("no spaces please", "http://127.0.0.1:9")


def test_emit_never_raises_into_the_application(
    relay: FakeRelay, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            if record.msg == "boom":
                raise RuntimeError("formatter bug")
            return super().format(record)

    monkeypatch.setattr(logging, "raiseExceptions", False)
    handler = attach(logger, UserStatusHandler("tst", relay.url))
    handler.setFormatter(BrokenFormatter())

    logger.info("boom")  # must not raise
    logger.info("still working")
    handler.close()
    assert relay.messages() == ["still working"]


def test_rejected_records_are_counted_and_skipped(
    relay: FakeRelay, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    relay.fail_next(1, 400, "log_message must be a non-empty string")
    handler = attach(logger, UserStatusHandler("tst", relay.url))
    logger.info("refused")
    logger.info("accepted")
    handler.close()

    assert relay.messages() == ["accepted"]
    assert handler.stats().rejected == 1
    assert "rejected a log record" in capsys.readouterr().err


def test_a_burst_of_10000_records_from_four_threads_never_blocks_on_a_stuck_relay(
    relay: FakeRelay, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a relay that holds every request, one record in flight and a 1,000-record queue
    relay.hold_requests()
    handler = attach(logger, UserStatusHandler("tst", relay.url, queue_size=1000, close_timeout=60))
    logger.info("in flight")
    assert relay.wait_for(lambda: relay.newlog_attempts == 1)
    threads_count, per_thread = 4, 2500
    start = threading.Barrier(threads_count, timeout=30)

    def produce(index: int) -> None:
        start.wait()
        for n in range(per_thread):
            logger.info("thread %d record %d", index, n)

    # When four threads log 10,000 records at once
    producers = [
        threading.Thread(target=produce, args=(i,), daemon=True) for i in range(threads_count)
    ]
    for thread in producers:
        thread.start()
    deadline = time.monotonic() + 60  # a bound on a blocked caller, not a measurement
    for thread in producers:
        thread.join(max(0.0, deadline - time.monotonic()))

    # Then every call returned although nothing was sent, and every record is accounted for
    assert not any(thread.is_alive() for thread in producers)
    stats = handler.stats()
    assert (stats.sent, stats.rejected, stats.abandoned) == (0, 0, 0)
    assert stats.queued == 1000 + 1
    assert stats.dropped == 10_000 - 1000
    assert stats.sent + stats.dropped + stats.queued == 10_001

    # And once the relay answers, the kept records go out after one drop notice, oldest first
    relay.release_requests()
    handler.close()
    messages = relay.messages()
    assert messages[:2] == [
        "in flight",
        "userstatus: dropped 9000 log records (client queue full)",
    ]
    kept = messages[2:]
    assert len(kept) == 1000
    assert handler.stats() == HandlerStats(
        sent=1001, dropped=9000, rejected=0, abandoned=0, queued=0
    )
    for index in range(threads_count):
        numbers = [int(m.split()[-1]) for m in kept if m.startswith(f"thread {index} ")]
        assert numbers == sorted(numbers)
    assert "9000 dropped (queue full)" in capsys.readouterr().err


def test_a_full_queue_drops_the_oldest_records_and_says_so(
    relay: FakeRelay, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a relay that holds every request, so nothing leaves the 50-record queue
    relay.hold_requests()
    handler = attach(logger, UserStatusHandler("tst", relay.url, queue_size=50))
    logger.info("record 0")
    assert relay.wait_for(lambda: relay.newlog_attempts == 1)  # record 0 is in flight

    # When 500 more records are logged
    for n in range(1, 501):
        logger.info("record %d", n)

    # Then the 450 oldest of them were dropped and counted; the newest 50 are kept
    assert handler.dropped == 450
    relay.release_requests()
    handler.close()
    messages = relay.messages()
    assert messages[0] == "record 0"
    assert messages[1] == "userstatus: dropped 450 log records (client queue full)"
    assert messages[2:] == [f"record {n}" for n in range(451, 501)]
    assert relay.records[1].log_level == "warning"
    stats = handler.stats()
    assert (stats.sent, stats.dropped, stats.abandoned, stats.queued) == (51, 450, 0, 0)
    assert "450 dropped (queue full)" in capsys.readouterr().err


def test_records_logged_while_the_relay_is_down_arrive_when_it_is_back(
    relay: FakeRelay, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = attach(logger, UserStatusHandler("tst", relay.url, max_backoff=0.2))
    logger.info("before the outage")
    assert relay.wait_for(lambda: relay.messages() == ["before the outage"])

    # Given the relay goes down while the observatory keeps logging
    relay.stop()
    for n in range(20):
        logger.warning("during the outage %d", n)
    time.sleep(0.5)  # several failed attempts happen meanwhile
    # When it comes back up on the same port
    relay.start()
    logger.info("after the outage")
    handler.close()

    # Then nothing was lost and the outage was reported
    assert relay.messages() == [
        "before the outage",
        *[f"during the outage {n}" for n in range(20)],
        "after the outage",
    ]
    err = capsys.readouterr().err
    assert "holding records and retrying" in err
    assert "relay reachable again" in err


def test_close_delivers_what_is_queued(relay: FakeRelay, logger: logging.Logger) -> None:
    handler = attach(logger, UserStatusHandler("tst", relay.url))
    for n in range(200):
        logger.info("queued %d", n)
    handler.close()  # no waiting needed afterwards: close flushed the queue
    assert len(relay.messages()) == 200
    assert handler.stats().queued == 0


def test_close_gives_up_after_its_timeout_and_counts_what_was_left(
    relay: FakeRelay, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a relay that never answers and a handler with a short close timeout
    relay.hold_requests()
    handler = attach(
        logger, UserStatusHandler("tst", relay.url, close_timeout=0.2, timeout=0.5, max_backoff=0.1)
    )
    for n in range(10):
        logger.info("stuck %d", n)

    # When the application closes it
    closer = threading.Thread(target=handler.close)
    closer.start()
    closer.join(10)

    # Then close returned without waiting for the request in flight; the rest was abandoned
    assert not closer.is_alive()
    stats = handler.stats()
    assert (stats.sent, stats.abandoned, stats.queued) == (0, 9, 1)
    assert "10 not sent before the close timeout (1 of them still in flight)" in (
        capsys.readouterr().err
    )
    logger.info("after close")
    assert handler.dropped == 1
    # And the request in flight is counted as abandoned once its socket timeout (0.5 s) ends it
    assert relay.wait_for(lambda: handler.stats().queued == 0, timeout=10)
    stats = handler.stats()
    assert (stats.sent, stats.abandoned, stats.queued) == (0, 10, 0)
    assert relay.newlog_attempts == 1
    relay.release_requests()


def test_logging_shutdown_waits_one_close_timeout_in_all_even_with_a_request_in_flight(
    relay: FakeRelay, logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a relay that holds every request, and a request timeout far beyond close_timeout
    relay.hold_requests()
    close_timeout = 0.5
    handler = attach(
        logger, UserStatusHandler("tst", relay.url, close_timeout=close_timeout, timeout=60)
    )
    for n in range(10):
        logger.info("stuck %d", n)
    assert relay.wait_for(lambda: relay.newlog_attempts == 1)

    # When logging shuts down as at interpreter exit (flush, then close, under the handler lock)
    shutdown = threading.Thread(target=logging.shutdown, args=([weakref.ref(handler)],))
    shutdown.start()
    shutdown.join(close_timeout + 2)  # a bound, not a measurement: flush + close share 0.5 s

    # Then it has returned; the request in flight is still counted as queued, the rest abandoned
    assert not shutdown.is_alive()
    stats = handler.stats()
    assert (stats.sent, stats.abandoned, stats.queued) == (0, 9, 1)
    assert "10 not sent before the close timeout" in capsys.readouterr().err
    # And when the relay answers at last, that record is counted as sent
    relay.release_requests()
    assert relay.wait_for(lambda: handler.stats().queued == 0, timeout=10)
    assert (handler.stats().sent, relay.messages()) == (1, ["stuck 0"])


def test_a_record_logged_after_a_flush_that_gave_up_gets_the_whole_close_timeout(
    relay: FakeRelay, logger: logging.Logger
) -> None:
    # Given a flush that gave up on a held relay
    relay.hold_requests()
    handler = attach(logger, UserStatusHandler("tst", relay.url, close_timeout=0.1))
    logger.info("before the flush")
    handler.flush()
    assert handler.stats().queued == 1
    handler.close_timeout = 30  # close's own budget from here: the flush's has passed

    # When a record is logged, the relay answers again, and the handler is closed
    logger.info("after the flush")
    relay.release_requests()
    handler.close()

    # Then close did not reuse the flush's spent deadline: both records went out
    assert relay.messages() == ["before the flush", "after the flush"]
    assert handler.stats().abandoned == 0


def test_records_are_flushed_when_the_program_exits_without_closing(
    relay: FakeRelay, client_env: dict[str, str]
) -> None:
    # Given a program that logs and exits without closing its handler
    program = (
        "import logging, userstatus_client\n"
        f"handler = userstatus_client.UserStatusHandler('tst', {relay.url!r})\n"
        "logging.basicConfig(level=logging.INFO, handlers=[handler])\n"
        "for n in range(50): logging.info('exiting %d', n)\n"
    )
    done = subprocess.run(  # noqa: S603 (this interpreter, fixed program)
        [sys.executable, "-c", program],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # Then logging's shutdown at exit closed the handler, which sent everything
    assert done.returncode == 0, done.stderr
    assert relay.messages() == [f"INFO:root:exiting {n}" for n in range(50)]  # basicConfig format
