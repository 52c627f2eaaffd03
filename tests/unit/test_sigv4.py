"""The lean SigV4 signer gives exactly botocore's signature for management API posts."""

from __future__ import annotations

import datetime

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from userstatus.sigv4 import RequestSigner, payload_hash

MOMENT = datetime.datetime(2026, 11, 21, 23, 59, 58, tzinfo=datetime.UTC)


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEXAMPLETOKEN//+="])
@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("abc123.execute-api.us-east-1.amazonaws.com", "/dev/@connections/VfgCPdIeoAMCJxA%3D"),
        ("abc123.execute-api.eu-west-1.amazonaws.com", "/prod/@connections/a%2Fb%2Bc%3D"),
        ("127.0.0.1:3001", "/local/@connections/x"),
    ],
)
def test_signature_matches_botocore(
    monkeypatch: pytest.MonkeyPatch, token: str | None, host: str, path: str
) -> None:
    body = '{"site":"tst","message":"Dome ☂","log_level":"info","timestamp":"1"}'.encode()
    scheme = "http" if host.startswith("127.") else "https"
    request = AWSRequest(method="POST", url=f"{scheme}://{host}{path}", data=body)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: MOMENT.replace(tzinfo=None))
    SigV4Auth(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token), "execute-api", "us-east-1"
    ).add_auth(request)

    ours = RequestSigner("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", token, region="us-east-1").sign(
        "POST", host, path, payload_hash(body), now=MOMENT
    )

    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")


def test_signing_key_follows_the_day() -> None:
    signer = RequestSigner("AK", "SK", None, region="us-east-1")
    first = signer.sign("POST", "h", "/p", payload_hash(b""), now=MOMENT)
    next_day = signer.sign(
        "POST", "h", "/p", payload_hash(b""), now=MOMENT + datetime.timedelta(seconds=3)
    )
    assert "/20261121/" in first["Authorization"]
    assert "/20261122/" in next_day["Authorization"]
