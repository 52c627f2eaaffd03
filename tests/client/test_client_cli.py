"""The ``userstatus`` command: arguments, environment variables, exit status, tail end to end."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.client.streams import LineReader
from tests.fakes.fake_relay import FakeRelay
from userstatus_client.cli import main

DEAD_URL = "http://127.0.0.1:9"


def run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_send_joins_words_and_prints_what_was_stored(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERSTATUS_URL", relay.url)

    status, out, _ = run(["send", "--site", "tst", "--level", "WARNING", "Slewing", "to", "M31"])

    assert status == 0
    printed = json.loads(out)
    assert (printed["message"], printed["log_level"]) == ("Slewing to M31", "warning")
    assert printed["id"] == relay.records[0].id
    assert relay.messages("tst") == ["Slewing to M31"]


def test_send_url_flag_wins_over_the_environment(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERSTATUS_URL", DEAD_URL)
    status, _, _ = run(["send", "--site", "tst", "--url", relay.url, "--level", "warn", "hi"])
    assert status == 0
    assert relay.records[0].log_level == "warning"


def test_send_reads_the_message_from_stdin(relay: FakeRelay) -> None:
    status, _, _ = run(["send", "--site", "tst", "--url", relay.url, "-"], stdin="line 1\nline 2\n")
    assert status == 0
    assert relay.messages() == ["line 1\nline 2"]


def test_send_with_a_timestamp(relay: FakeRelay) -> None:
    run(["send", "--site", "tst", "--url", relay.url, "--timestamp", "1604514063", "m"])
    assert relay.records[0].timestamp == 1604514063.0


def test_send_reports_the_relays_refusal_and_exits_1(relay: FakeRelay) -> None:
    relay.fail_next(1, 400, "site tst is not registered")
    status, out, err = run(["send", "--site", "tst", "--url", relay.url, "hello"])
    assert status == 1
    assert out == ""
    assert "HTTP 400" in err
    assert "site tst is not registered" in err


def test_send_exits_1_when_the_relay_is_unreachable(relay: FakeRelay) -> None:
    relay.stop()
    status, _, err = run(["send", "--site", "tst", "--url", relay.url, "--retries", "1", "hi"])
    assert status == 1
    assert "relay unavailable after 2 attempt(s)" in err
    assert "ConnectionRefusedError" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["send", "hello"],  # no --site
        ["send", "--site", "tst"],  # no message
        ["send", "--site", "tst", "--level", "verbose", "hello"],
        ["send", "--site", "tst", "--retries", "-1", "hello"],
        ["tail", "--site", "tst", "--since", "yesterday"],
        ["tail", "--site", "tst", "--limit", "0"],
        ["tail", "--site", "tst", "--color", "sometimes"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage: userstatus" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["send", "--site", "bad site", "hello"], "site must be 1-64 letters"),
        (["send", "--site", "", "hello"], "site must be 1-64 letters"),
        (["tail", "--site", "x" * 65], "site must be 1-64 letters"),
        (["tail", "--site", "tst/../other"], "site must be 1-64 letters"),
        (["send", "--site", "tst", "--url", "127.0.0.1:3000", "hi"], "must start with http://"),
        (["send", "--site", "tst", "--url", "ftp://relay", "hi"], "must start with http://"),
        (["send", "--site", "tst", "--url", "http://", "hi"], "has no host"),
        (["send", "--site", "tst", "--url", "http://h:99999", "hi"], "invalid port"),
        (["send", "--site", "tst", "--url", "http://h/x?y=1", "hi"], "query or fragment"),
        (["tail", "--site", "tst", "--url", "ws://127.0.0.1:3001"], "must start with http://"),
        (["tail", "--site", "tst", "--ws-url", "http://127.0.0.1:3001"], "must start with ws://"),
        (["tail", "--site", "tst", "--ws-url", "wss://"], "has no host"),
        (["tail", "--site", "tst", "--ws-url", "ws://relay dev"], "whitespace"),
    ],
)
def test_bad_site_or_urls_exit_2_with_a_clear_message(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert complaint in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("variable", "value", "argv"),
    [
        ("USERSTATUS_URL", "ftp://relay", ["send", "--site", "tst", "hi"]),
        ("USERSTATUS_URL", "relay.example.org", ["tail", "--site", "tst"]),
        ("USERSTATUS_WS_URL", "https://relay.example.org", ["tail", "--site", "tst"]),
    ],
)
def test_bad_urls_in_the_environment_exit_2_naming_the_variable(
    variable: str,
    value: str,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"${variable}" in err
    assert repr(value) in err


def test_a_url_flag_wins_over_a_bad_environment_variable(
    relay: FakeRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USERSTATUS_URL", "not a url")
    monkeypatch.setenv("USERSTATUS_WS_URL", "not a url either")  # send never uses it
    status, _, _ = run(["send", "--site", "tst", "--url", relay.url + "/", "hi"])
    assert status == 0
    assert relay.messages() == ["hi"]


def test_tail_exits_1_with_the_servers_reason_when_the_handshake_is_refused(
    relay: FakeRelay,
) -> None:
    # Given a relay that refuses the site at the WebSocket handshake (as $connect does: 400)
    relay.fail_next_handshakes(1, 400, "site tst is closed")

    # When tail starts
    status, out, err = run(["tail", "--site", "tst", "--url", relay.url, "--ws-url", relay.ws_url])

    # Then it stops at once with the server's reason instead of reconnecting
    assert status == 1
    assert out == ""
    assert "HTTP 400" in err
    assert "site tst is closed" in err
    assert "reconnecting" not in err
    assert relay.handshake_attempts == 1


def test_help_runs_as_a_module(client_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "userstatus_client", "tail", "--help"],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    for option in ("--site", "--since", "--url", "--ws-url", "--color", "USERSTATUS_WS_URL"):
        assert option in done.stdout


def test_tail_command_prints_history_then_live_reconnects_and_stops_on_ctrl_c(
    relay: FakeRelay, client_env: dict[str, str]
) -> None:
    # Given a stored message and the URLs in the environment
    relay.store("tst", "Opening dome", "info", timestamp=time.time() - 600)
    env = {**client_env, "USERSTATUS_URL": relay.url, "USERSTATUS_WS_URL": relay.ws_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "userstatus_client", "tail", "--site", "tst", "--since", "1h"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    out, err = LineReader(process.stdout), LineReader(process.stderr)
    try:
        # When it has printed the history, a message is sent, the socket drops, another is sent
        history_line = out.wait_for("Opening dome")
        assert relay.wait_for(lambda: relay.connections("tst") == 1)
        relay.send_frame("tst", {"error": "Internal server error"})
        relay.send_frame("tst", {"action": "subscribed"})
        send_status, _, _ = run(["send", "--site", "tst", "--url", relay.url, "--", "-l"])
        assert send_status == 0
        out.wait_for(" -l")
        relay.drop_websockets()
        err.wait_for("reconnected")
        assert relay.wait_for(lambda: relay.connections("tst") == 1)
        run(["send", "--site", "tst", "--url", relay.url, "--level", "error", "Dome fault"])
        out.wait_for("Dome fault")
    finally:
        process.send_signal(signal.SIGINT)
        status = process.wait(10)

    # Then everything was printed once, plain (not a terminal), and Ctrl-C exits quietly
    assert history_line.endswith(" INFO     Opening dome")
    assert [line[6:] for line in out.lines] == [
        "INFO     Opening dome",
        "INFO     -l",
        "ERROR    Dome fault",
    ]
    assert "relay error: Internal server error" in "\n".join(err.lines)
    assert status == 130
    assert not any("Traceback" in line for line in err.lines)
    assert "\033[" not in "".join(out.lines)


def test_the_package_needs_no_url_in_the_environment() -> None:
    assert "USERSTATUS_URL" not in os.environ  # the autouse fixture keeps the host's out
