"""SigV4 checking of the relay's management API, as API Gateway checks ``@connections`` calls.

API Gateway accepts a ``POST|GET|DELETE @connections/{id}`` only with a valid Signature Version 4
(service ``execute-api``) of credentials allowed to call it; otherwise it answers 403. The relay
checks the same, against the credentials and region it gives its own functions, so a signing
bug fails the tests instead of production. The signature is recomputed here from the request as
received (its method, raw path and query, the headers it says it signed, its body), following
AWS's Signature Version 4 specification, independently of the project's own signer
(``userstatus.sigv4``), which it checks. botocore's ``SigV4Auth`` gives the same answers (tests
sign with it) but costs about half a millisecond of CPU a request, which with 100 subscribers
doubled the relay's CPU per broadcast (B3); this costs about 35 µs (the signing key derived
once a day, each connection's canonical path kept, no ``strptime``; measured 34 µs in
isolation, and a quarter of the relay's CPU per post in B3): with 100 subscribers every
broadcast checks 100 signatures on the relay's one event loop.

The answers are API Gateway's (status 403, ``x-amzn-ErrorType``, ``{"message": ...}``):

* no ``Authorization`` header: ``MissingAuthenticationTokenException``,
  "Missing Authentication Token";
* a key id other than the relay's: ``UnrecognizedClientException``, "The security token
  included in the request is invalid.";
* a wrong region or service in the scope, an ``X-Amz-Date`` more than 5 minutes off, or a
  signature that does not match: ``InvalidSignatureException`` with AWS's texts.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

if TYPE_CHECKING:
    from aiohttp import web

SERVICE = "execute-api"
# SigV4 requests are refused when their time is this far from the service's clock.
MAX_CLOCK_SKEW = datetime.timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: API Gateway's error type and message."""

    error_type: str
    message: str


@dataclass(frozen=True)
class ManagementAuth:
    """Checks requests against one set of credentials and region."""

    access_key: str
    secret_key: str
    token: str | None
    region: str
    # The service the signature must be scoped to (``lambda`` for the relay's Invoke API).
    service: str = SERVICE

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], service: str = SERVICE) -> ManagementAuth:
        """The credentials and region the relay's functions sign with."""
        return cls(
            access_key=environ["AWS_ACCESS_KEY_ID"],
            secret_key=environ["AWS_SECRET_ACCESS_KEY"],
            token=environ.get("AWS_SESSION_TOKEN") or None,
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            service=service,
        )

    def request_refusal(self, request: web.Request, body: bytes) -> Refusal | None:
        """``refusal`` of an aiohttp request as the relay received it (its Host header and
        raw path, which the sender signed)."""
        return self.refusal(
            request.method, f"http://{request.host}{request.raw_path}", request.headers, body
        )

    def refusal(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        now: datetime.datetime | None = None,
    ) -> Refusal | None:
        """None if the request is signed by these credentials, else why it is refused.

        ``url`` is the scheme, the Host header and the raw path with its query, as received.
        ``headers`` are looked up case-insensitively: aiohttp's ``CIMultiDictProxy`` as it is
        (a header sent more than once is signed as its values joined with commas), any other
        mapping by its lowered names."""
        header = _header_lookup(headers)
        authorization = header("authorization")
        if not authorization:
            return Refusal("MissingAuthenticationTokenException", "Missing Authentication Token")
        parsed = _AUTHORIZATION.fullmatch(authorization.strip())
        if parsed is None:
            return Refusal(
                "IncompleteSignatureException",
                f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' "
                f"parameters. Authorization={authorization}",
            )
        if parsed["key"] != self.access_key:
            return Refusal(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if self.token is not None and header("x-amz-security-token") != self.token:
            return Refusal(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if parsed["region"] != self.region or parsed["service"] != self.service:
            return Refusal(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region and to the service "
                f"'{self.service}' ({self.region}).",
            )
        amz_date = header("x-amz-date") or ""
        signed_at = _amz_date(amz_date)
        if signed_at is None:
            return Refusal("IncompleteSignatureException", "X-Amz-Date is missing or malformed.")
        moment = now or datetime.datetime.now(datetime.UTC)
        if abs(moment - signed_at) > MAX_CLOCK_SKEW or amz_date[:8] != parsed["day"]:
            return Refusal(
                "InvalidSignatureException",
                f"Signature expired: {amz_date} is now earlier or later than "
                f"{moment.strftime('%Y%m%dT%H%M%SZ')} (5 minutes).",
            )
        signed_names = parsed["headers"].split(";")
        signed_values = [header(name) for name in signed_names]
        if "host" not in signed_names or None in signed_values:
            return Refusal("InvalidSignatureException", SIGNATURE_MISMATCH)
        canonical_headers = "".join(
            f"{name}:{' '.join(str(value).split())}\n"
            for name, value in zip(signed_names, signed_values, strict=True)
        )
        expected = self._signature(
            method, url, canonical_headers, parsed["headers"], body, amz_date
        )
        if not hmac.compare_digest(expected, parsed["signature"]):
            return Refusal("InvalidSignatureException", SIGNATURE_MISMATCH)
        return None

    def _signature(
        self,
        method: str,
        url: str,
        canonical_headers: str,
        signed_headers: str,
        body: bytes,
        amz_date: str,
    ) -> str:
        """The SigV4 signature of the request, as its sender should have computed it."""
        path, _, query = url.partition("?")
        canonical_request = "\n".join(
            (
                method,
                _canonical_path(path),
                _canonical_query(query) if query else "",
                canonical_headers,
                signed_headers,
                hashlib.sha256(body).hexdigest(),
            )
        )
        day = amz_date[:8]
        string_to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256",
                amz_date,
                f"{day}/{self.region}/{self.service}/aws4_request",
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            )
        )
        key = _signing_key(self.secret_key, day, self.region, self.service)
        return hmac.digest(key, string_to_sign.encode(), "sha256").hex()


def _header_lookup(headers: Mapping[str, str]) -> Callable[[str], str | None]:
    """A function from a lowered header name to its value (None if absent)."""
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        getall = headers.getall

        def header(name: str) -> str | None:
            values = getall(name, None)
            if values is None:
                return None
            return values[0] if len(values) == 1 else ",".join(values)

        return header
    return {name.lower(): value for name, value in headers.items()}.get


def _amz_date(text: str) -> datetime.datetime | None:
    """The moment an ``X-Amz-Date`` (``YYYYMMDDTHHMMSSZ``) names; None if malformed."""
    if _AMZ_DATE.fullmatch(text) is None:
        return None
    try:
        return datetime.datetime(
            int(text[0:4]),
            int(text[4:6]),
            int(text[6:8]),
            int(text[9:11]),
            int(text[11:13]),
            int(text[13:15]),
            tzinfo=datetime.UTC,
        )
    except ValueError:
        return None


@functools.lru_cache(maxsize=4096)
def _canonical_path(url_without_query: str) -> str:
    """The canonical URI of ``scheme://host/path``: the path URI-encoded once more, as
    every service but S3 signs it (a broadcast posts to the same paths again and again)."""
    path = urlsplit(url_without_query).path or "/"
    return quote(path, safe="/~")


@functools.cache
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in sorted(pairs)
    )
