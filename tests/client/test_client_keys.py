"""The client's publish key: sent as a Bearer header with posts only, never shown."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest

from tests.fakes.fake_relay import FakeRelay
from userstatus_client import RelayClient, UserStatusHandler, send
from userstatus_client.cli import main

KEY = "usk_0123456789ab_" + "k" * 43


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger(f"observatory.keys.{time.monotonic_ns()}")
    log.setLevel(1)
    log.propagate = False
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()


def test_send_carries_the_key_as_a_bearer_header(relay: FakeRelay) -> None:
    send("tst", "Dome open", key=KEY, url=relay.url)
    assert relay.authorizations == [("/newlog", f"Bearer {KEY}")]


def test_the_key_comes_from_the_environment(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERSTATUS_KEY", KEY)
    send("tst", "Dome open", url=relay.url)
    assert relay.authorizations == [("/newlog", f"Bearer {KEY}")]


def test_without_a_key_no_authorization_is_sent(relay: FakeRelay) -> None:
    send("tst", "Dome open", url=relay.url)
    assert relay.authorizations == [("/newlog", None)]


def test_reads_are_sent_without_the_key(relay: FakeRelay) -> None:
    with RelayClient(relay.url, key=KEY) as client:
        client.send("tst", "one")
        client.recent_logs("tst")
    assert relay.authorizations == [("/newlog", f"Bearer {KEY}"), ("/recent-logs", None)]


@pytest.mark.parametrize("bad", [KEY + "\r\nX-Injected: 1", " " + KEY, "two words", "x" * 300])
def test_a_key_that_cannot_be_a_header_is_refused_without_quoting_it(
    relay: FakeRelay, bad: str
) -> None:
    with pytest.raises(ValueError, match="publish key") as refused:
        send("tst", "m", key=bad, url=relay.url)
    assert bad.strip() not in str(refused.value)
    assert relay.newlog_attempts == 0


def test_the_handler_sends_its_key_and_never_logs_it(
    relay: FakeRelay, logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    relay.fail_next(1, 403, "Authorization is not a key of site 'tst'")
    handler = UserStatusHandler("tst", relay.url, key=KEY)
    logger.addHandler(handler)
    with caplog.at_level(logging.DEBUG):
        logger.warning("refused")
        logger.warning("stored")
        handler.close()
    assert relay.messages("tst") == ["stored"]
    assert {header for _, header in relay.authorizations} == {f"Bearer {KEY}"}
    assert handler.stats().rejected == 1
    assert KEY not in caplog.text


def test_cli_send_takes_a_key_and_does_not_print_it(relay: FakeRelay) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["send", "--site", "tst", "--url", relay.url, "--key", KEY, "Dome", "open"],
        stdin=io.StringIO(""),
        stdout=out,
        stderr=err,
    )
    assert status == 0, err.getvalue()
    assert relay.authorizations == [("/newlog", f"Bearer {KEY}")]
    assert KEY not in out.getvalue() + err.getvalue()


def test_cli_reports_a_refused_key_without_printing_it(relay: FakeRelay) -> None:
    relay.fail_next(1, 403, "Authorization was revoked")
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["send", "--site", "tst", "--url", relay.url, "--key", KEY, "x"],
        stdin=io.StringIO(""),
        stdout=out,
        stderr=err,
    )
    assert status == 1
    assert "Authorization was revoked" in err.getvalue()
    assert KEY not in err.getvalue()


def test_cli_refuses_a_bad_key_in_the_environment(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("USERSTATUS_KEY", "two words")
    with pytest.raises(SystemExit) as exited:
        main(["send", "--site", "tst", "--url", relay.url, "x"])
    assert exited.value.code == 2
    assert "$USERSTATUS_KEY" in capsys.readouterr().err
    assert relay.newlog_attempts == 0


def test_cli_tail_accepts_a_key_it_does_not_need() -> None:
    from userstatus_client.cli import build_parser

    args = build_parser().parse_args(["tail", "--site", "tst", "--key", KEY])
    assert args.key == KEY
