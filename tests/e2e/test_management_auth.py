"""The relay's SigV4 check agrees with botocore's signer and the project's own, and refuses
every change to a signed request."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict, CIMultiDictProxy

from userstatus.sigv4 import RequestSigner, payload_hash
from userstatus_local.management_auth import ManagementAuth

AUTH = ManagementAuth("AKIDLOCAL", "secret", None, "eu-west-1")
HOST = "127.0.0.1:3001"


def other(**changes: Any) -> ManagementAuth:
    """The relay's check with other credentials or region."""
    return dataclasses.replace(AUTH, **changes)


def botocore_signed(method: str, url: str, body: bytes, token: str | None = None) -> Any:
    request = AWSRequest(method=method, url=url, data=body)
    credentials = Credentials("AKIDLOCAL", "secret", token)
    SigV4Auth(credentials, "execute-api", "eu-west-1").add_auth(request)
    return {**dict(request.headers.items()), "Host": HOST}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/local/@connections/VfgCPdIeoAMCJxA%3D", b'{"m": "\\u00e9"}'),
        ("GET", "/local/@connections/a%2Fb%2Bc%3D", b""),
        ("DELETE", "/@connections/x", b""),
        ("GET", "/local/@connections/x?b=2&a=1&a=0&c=%20d", b""),
    ],
)
def test_signatures_made_by_botocore_are_accepted(method: str, path: str, body: bytes) -> None:
    url = f"http://{HOST}{path}"
    assert AUTH.refusal(method, url, botocore_signed(method, url, body), body) is None


def test_signatures_made_by_the_project_signer_are_accepted() -> None:
    path = "/local/@connections/VfgCPdIeoAMCJxA%3D"
    body = b"{}"
    signer = RequestSigner("AKIDLOCAL", "secret", None, region="eu-west-1")
    headers = {**signer.sign("POST", HOST, path, payload_hash(body)), "Host": HOST}
    assert AUTH.refusal("POST", f"http://{HOST}{path}", headers, body) is None


def test_a_session_token_must_be_the_one_signed() -> None:
    auth = ManagementAuth("AKIDLOCAL", "secret", "token-1", "eu-west-1")
    url = f"http://{HOST}/local/@connections/x"
    assert auth.refusal("POST", url, botocore_signed("POST", url, b"{}", "token-1"), b"{}") is None
    refusal = auth.refusal("POST", url, botocore_signed("POST", url, b"{}", "token-2"), b"{}")
    assert refusal is not None
    assert refusal.error_type == "UnrecognizedClientException"


@pytest.mark.parametrize(
    ("change", "error_type"),
    [
        ({"body": b'{"other": 1}'}, "InvalidSignatureException"),
        ({"method": "DELETE"}, "InvalidSignatureException"),
        ({"url": f"http://{HOST}/local/@connections/y"}, "InvalidSignatureException"),
        ({"drop": "Authorization"}, "MissingAuthenticationTokenException"),
        (
            {"auth": ManagementAuth("AKIDLOCAL", "other", None, "eu-west-1")},
            "InvalidSignatureException",
        ),
        (
            {"auth": ManagementAuth("AKIDOTHER", "secret", None, "eu-west-1")},
            "UnrecognizedClientException",
        ),
        (
            {"auth": ManagementAuth("AKIDLOCAL", "secret", None, "us-east-1")},
            "InvalidSignatureException",
        ),
        ({"later": datetime.timedelta(minutes=6)}, "InvalidSignatureException"),
    ],
)
def test_any_change_to_a_signed_request_is_refused(change: dict[str, Any], error_type: str) -> None:
    url = f"http://{HOST}/local/@connections/x"
    body = b'{"n": 1}'
    headers = botocore_signed("POST", url, body)
    if "drop" in change:
        headers.pop(change["drop"])
    now = datetime.datetime.now(datetime.UTC) + change.get("later", datetime.timedelta())
    refusal = change.get("auth", AUTH).refusal(
        change.get("method", "POST"), change.get("url", url), headers, change.get("body", body), now
    )
    assert refusal is not None
    assert refusal.error_type == error_type


def test_headers_as_aiohttp_holds_them_are_read_case_insensitively_and_repeats_joined() -> None:
    url = f"http://{HOST}/local/@connections/x"
    body = b'{"n": 1}'
    signed = CIMultiDict(botocore_signed("POST", url, body))
    # An unsigned header sent twice changes nothing,
    signed.add("X-Extra", "one")
    signed.add("x-extra", "two")
    assert AUTH.refusal("POST", url, CIMultiDictProxy(signed), body) is None
    # but a signed header sent twice is signed as its values joined, so no longer matches.
    signed.add("host", HOST)
    refusal = AUTH.refusal("POST", url, CIMultiDictProxy(signed), body)
    assert refusal is not None
    assert refusal.error_type == "InvalidSignatureException"


@pytest.mark.parametrize(
    "amz_date", ["", "20261302T000000Z", "2026-12-02T00:00:00Z", "20261202T2500"]
)
def test_a_malformed_amz_date_is_refused(amz_date: str) -> None:
    url = f"http://{HOST}/local/@connections/x"
    headers = {**botocore_signed("POST", url, b"{}"), "X-Amz-Date": amz_date}
    refusal = AUTH.refusal("POST", url, headers, b"{}")
    assert refusal is not None
    assert refusal.error_type == "IncompleteSignatureException"
