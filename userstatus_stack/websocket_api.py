"""The WebSocket API: routes from ``userstatus.routes.WEBSOCKET_ROUTES``, one stage per deployment.

API Gateway authorizes WebSocket clients only on ``$connect``, and the status page connects
anonymously. So with ``post_auth='iam'`` the routes that post messages are left out (their
frames fall through to ``$default``, which does not post) and posting goes through the signed
HTTP ``POST /newlog`` only.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from userstatus.routes import (
    WEBSOCKET_ROUTE_SELECTION_EXPRESSION,
    WEBSOCKET_ROUTES,
    WebSocketRoute,
)
from userstatus_stack.access_logs import (
    WEBSOCKET_ACCESS_LOG_FIELDS,
    AccessLogSettings,
    access_log_group,
)
from userstatus_stack.config import StageConfig
from userstatus_stack.functions import (
    acknowledge_invoke_permissions,
    api_functions,
    function_id,
)
from userstatus_stack.nag import acknowledge


def deployed_websocket_routes(config: StageConfig) -> tuple[WebSocketRoute, ...]:
    """The WebSocket routes this stage deploys: all, minus posting routes under IAM auth."""
    if config.post_auth == "iam":
        return tuple(route for route in WEBSOCKET_ROUTES if not route.posts_messages)
    return WEBSOCKET_ROUTES


class StatusWebSocketApi(Construct):
    """``WebSocketApi`` with a throttled, auto-deployed stage named after the deployment stage."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        code: lambda_.Code,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.routes = deployed_websocket_routes(config)
        self.functions = api_functions(
            self,
            (route.handler for route in self.routes),
            config=config,
            code=code,
            environment=environment,
            purpose="WebSocket API",
        )

        self.api = apigw.WebSocketApi(
            self,
            "Api",
            description=f"photonranch user status ({config.stage}): live site messages",
            route_selection_expression=WEBSOCKET_ROUTE_SELECTION_EXPRESSION,
        )
        route_integrations = {
            handler: integrations.WebSocketLambdaIntegration(
                f"{function_id(handler)}Integration", fn
            )
            for handler, fn in self.functions.items()
        }
        for route in self.routes:
            ws_route = self.api.add_route(
                route.route_key,
                integration=route_integrations[route.handler],
                return_response=route.returns_response or None,
            )
            acknowledge(
                ws_route, ["AwsSolutions-APIG4", "CT.APIGATEWAY.PR.5"], _open_route_reason(route)
            )
            acknowledge_invoke_permissions(ws_route)

        self.access_logs = access_log_group(
            self,
            "AccessLogs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        self.stage = apigw.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=config.stage,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.throttle_rate_limit,
                burst_limit=config.throttle_burst_limit,
            ),
            access_log_settings=AccessLogSettings(self.access_logs, WEBSOCKET_ACCESS_LOG_FIELDS),
        )

    @property
    def url(self) -> str:
        """The ``wss://`` URL clients connect to."""
        return self.stage.url

    @property
    def management_endpoint(self) -> str:
        """``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`` for @connections."""
        return self.stage.callback_url


def _open_route_reason(route: WebSocketRoute) -> str:
    if route.route_key == "$connect":
        return (
            "$connect is open by design: anonymous web visitors subscribe to site messages. "
            "Stage throttling bounds abuse."
        )
    if route.posts_messages:
        return (
            f"{route.route_key} posts unsigned while the stage's post_auth is 'none' (today's "
            "behaviour); API Gateway cannot authorize WebSocket routes other than $connect, so "
            "post_auth='iam' removes this route instead. Who may post is checked in the "
            "function by publish keys (publish_auth audit or keys, the frame's key field)."
        )
    return (
        f"{route.route_key} runs only on connections $connect already admitted; API Gateway "
        "accepts an authorizer on $connect only."
    )
