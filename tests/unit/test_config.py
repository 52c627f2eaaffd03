"""Settings from environment variables, validated once."""

from __future__ import annotations

import pytest

from userstatus.config import ConfigError, Settings
from userstatus.runtime import signing_region

BASE = {"MESSAGES_TABLE": "m", "CONNECTIONS_TABLE": "c"}


def test_defaults() -> None:
    settings = Settings.from_environ(BASE)
    assert settings.retention_days == 7
    assert settings.retention_seconds == 7 * 86400
    assert settings.allowed_origins == ("*",)
    assert settings.management_endpoint is None


def test_values_are_read() -> None:
    settings = Settings.from_environ(
        {
            **BASE,
            "MESSAGE_RETENTION_DAYS": "3",
            "CORS_ALLOWED_ORIGINS": "https://a.org, https://b.org",
            "WEBSOCKET_MANAGEMENT_ENDPOINT": "https://abc.execute-api.eu-west-1.amazonaws.com/dev/",
            "BROADCAST_CONCURRENCY": "16",
            "FANOUT_FUNCTION_NAME": "userstatus-dev-fanout",
            "FANOUT_CHUNK_CONNECTIONS": "250",
        }
    )
    assert settings.retention_days == 3
    assert settings.allowed_origins == ("https://a.org", "https://b.org")
    assert settings.management_endpoint == "https://abc.execute-api.eu-west-1.amazonaws.com/dev"
    assert settings.broadcast_concurrency == 16
    assert settings.fanout_function == "userstatus-dev-fanout"
    assert settings.fanout_chunk_connections == 250


def test_without_a_fan_out_function_the_broadcaster_posts_to_all_itself() -> None:
    assert Settings.from_environ(BASE).fanout_function is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CONNECTIONS_TABLE": "c"}, "MESSAGES_TABLE"),
        ({"MESSAGES_TABLE": "m", "CONNECTIONS_TABLE": " "}, "CONNECTIONS_TABLE"),
        ({**BASE, "MESSAGE_RETENTION_DAYS": "week"}, "MESSAGE_RETENTION_DAYS"),
        ({**BASE, "MESSAGE_RETENTION_DAYS": "0"}, "MESSAGE_RETENTION_DAYS"),
        ({**BASE, "WEBSOCKET_MANAGEMENT_ENDPOINT": "ftp://x"}, "WEBSOCKET_MANAGEMENT_ENDPOINT"),
        ({**BASE, "BROADCAST_CONCURRENCY": "100000"}, "BROADCAST_CONCURRENCY"),
        ({**BASE, "FANOUT_CHUNK_CONNECTIONS": "0"}, "FANOUT_CHUNK_CONNECTIONS"),
        ({**BASE, "FANOUT_CHUNK_CONNECTIONS": "60000"}, "FANOUT_CHUNK_CONNECTIONS"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_environ(environ)


def test_signing_region_comes_from_the_execute_api_host() -> None:
    assert signing_region("https://abc123.execute-api.ap-south-1.amazonaws.com/prod", "x") == (
        "ap-south-1"
    )
    assert signing_region("http://127.0.0.1:3001/local", "eu-west-2") == "eu-west-2"
