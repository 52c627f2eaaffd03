"""The relay's Lambda Invoke API for the fan-out function, called as the broadcaster calls it
(boto3's Lambda client, SigV4 for the service ``lambda``), with Lambda's answers."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from userstatus_local.lambda_invoke import FANOUT_FUNCTION_NAME
from userstatus_local.process import RelayProcess


def lambda_client(relay: RelayProcess, secret: str = "local") -> Any:  # noqa: S107
    return boto3.client(
        "lambda",
        endpoint_url=relay.ws_url.replace("ws://", "http://"),
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}),
    )


def invoke(relay: RelayProcess, payload: Any, **request: Any) -> dict[str, Any]:
    answer: dict[str, Any] = lambda_client(relay).invoke(
        **{"FunctionName": FANOUT_FUNCTION_NAME, "Payload": json.dumps(payload), **request}
    )
    answer["Body"] = json.loads(answer.pop("Payload").read())
    return answer


def test_the_fan_out_function_posts_and_answers_what_became_of_each_connection(
    relay: RelayProcess,
) -> None:
    answer = invoke(relay, {"frame": '{"m": 1}', "connection_ids": ["NoSuchConn0="], "seconds": 5})
    assert "FunctionError" not in answer
    # An unknown connection answers 410 on the relay's management API, as API Gateway does
    assert answer["Body"] == {
        "delivered": 0,
        "gone": ["NoSuchConn0="],
        "failed": [],
        "throttled": 0,
    }


def test_a_function_error_answers_200_with_the_error(relay: RelayProcess) -> None:
    answer = invoke(relay, {"connection_ids": [], "seconds": 1})
    assert answer["StatusCode"] == 200
    assert answer["FunctionError"] == "Unhandled"
    assert answer["Body"] == {"errorMessage": "frame must be a string", "errorType": "ValueError"}


@pytest.mark.parametrize(
    ("request_fields", "code"),
    [
        ({"FunctionName": "no-such-function"}, "ResourceNotFoundException"),
        ({"InvocationType": "Event"}, "InvalidParameterValueException"),
        ({"Payload": b"{not json"}, "InvalidRequestContentException"),
    ],
)
def test_what_lambda_refuses_is_refused(
    relay: RelayProcess, request_fields: dict[str, Any], code: str
) -> None:
    with pytest.raises(ClientError) as raised:
        lambda_client(relay).invoke(
            **{"FunctionName": FANOUT_FUNCTION_NAME, "Payload": b"{}", **request_fields}
        )
    assert raised.value.response["Error"]["Code"] == code


def test_a_wrong_secret_is_refused(relay: RelayProcess) -> None:
    with pytest.raises(ClientError) as raised:
        lambda_client(relay, secret="not-local").invoke(
            FunctionName=FANOUT_FUNCTION_NAME, Payload=b"{}"
        )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert raised.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_an_unsigned_invocation_is_refused(relay: RelayProcess) -> None:
    url = (
        relay.ws_url.replace("ws://", "http://")
        + f"/2015-03-31/functions/{FANOUT_FUNCTION_NAME}/invocations"
    )
    request = urllib.request.Request(url, data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 403
    assert raised.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
