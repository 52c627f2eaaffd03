"""The relay's Lambda Invoke API: the fan-out function, invoked by the broadcaster as in AWS.

The broadcaster splits a site of more than ``FANOUT_CHUNK_CONNECTIONS`` connections and invokes
the fan-out function (``userstatus.fanout``) synchronously for each further chunk, with boto3's
Lambda client. The relay points that client here (``AWS_ENDPOINT_URL_LAMBDA``) and answers
``POST /2015-03-31/functions/{FunctionName}/invocations`` as Lambda's Invoke does
(docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):

* a SigV4 signature of the functions' credentials for the service ``lambda``, or 403 with the
  error type of ``userstatus_local.management_auth``;
* the fan-out function's name or ARN, or 404 ``ResourceNotFoundException``;
* ``RequestResponse`` only (the broadcaster's), or 400 ``InvalidParameterValueException``;
* a JSON payload of at most 6 MB (6,291,456 bytes), or 413 ``RequestTooLargeException`` /
  400 ``InvalidRequestContentException``;
* the handler runs with the stage's fan-out timeout and memory; its answer is the body, and a
  function error (it raised, timed out or answered more than 6 MB) is a 200 with
  ``X-Amz-Function-Error: Unhandled`` and ``{"errorMessage", "errorType"}``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from userstatus_local.invoke import MAX_RESPONSE_BYTES, HandlerCrashed, Invoker, LambdaHandler
from userstatus_local.management_auth import ManagementAuth

logger = logging.getLogger("userstatus_local.lambda_invoke")

FANOUT_FUNCTION_NAME = "userstatus-local-fanout"
INVOKE_PATH = "/2015-03-31/functions/{function_name}/invocations"
LAMBDA_SERVICE = "lambda"


class LambdaInvokeApi:
    """Serves Invoke for one function."""

    def __init__(
        self,
        handler: LambdaHandler,
        invoker: Invoker,
        *,
        auth: ManagementAuth | None,
        function_name: str = FANOUT_FUNCTION_NAME,
    ) -> None:
        self._handler = handler
        self._invoker = invoker
        self._auth = auth
        self._name = function_name

    def add_routes(self, app: web.Application) -> None:
        """Serve Invoke on ``app``."""
        app.router.add_post(INVOKE_PATH, self.invoke)

    async def invoke(self, request: web.Request) -> web.Response:
        """Invoke: run the handler with the request's payload; its answer."""
        body = await request.read()
        if self._auth is not None:
            refusal = self._auth.request_refusal(request, body)
            if refusal is not None:
                logger.warning("invocation refused", extra={"reason": refusal.error_type})
                return _error(403, refusal.error_type, refusal.message)
        name = request.match_info["function_name"]
        if name != self._name and not name.endswith(f":function:{self._name}"):
            return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type != "RequestResponse":
            return _error(
                400,
                "InvalidParameterValueException",
                f"The relay invokes {self._name} with RequestResponse only, not {invocation_type}",
            )
        if len(body) > MAX_RESPONSE_BYTES:
            return _error(
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {MAX_RESPONSE_BYTES} bytes for the "
                "InvokeFunction operation",
            )
        try:
            payload: Any = json.loads(body) if body else {}
        except ValueError:
            return _error(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            )
        try:
            answer = await self._invoker.invoke(self._handler, payload, self._name)
        except HandlerCrashed as crash:
            cause = crash.__cause__
            return web.json_response(
                {
                    "errorMessage": str(cause) if cause is not None else "function error",
                    "errorType": type(cause).__name__ if cause is not None else "Unhandled",
                },
                headers={"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "$LATEST"},
            )
        return web.json_response(answer, headers={"X-Amz-Executed-Version": "$LATEST"})


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"Type": "User", "message": message},
        status=status,
        headers={"x-amzn-ErrorType": error_type},
    )
