"""The HTTP API: every route in ``userstatus.routes.HTTP_ROUTES`` on one function per handler."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from userstatus import cors
from userstatus.routes import HTTP_ROUTES, HttpRoute
from userstatus_stack.access_logs import HTTP_ACCESS_LOG_FIELDS, AccessLogSettings, access_log_group
from userstatus_stack.config import StageConfig
from userstatus_stack.functions import (
    acknowledge_invoke_permissions,
    api_functions,
    function_id,
)
from userstatus_stack.nag import acknowledge


class StatusHttpApi(Construct):
    """``HttpApi`` with CORS, a throttled ``$default`` stage with JSON access logs."""

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
        self.functions = api_functions(
            self,
            (route.handler for route in HTTP_ROUTES),
            config=config,
            code=code,
            environment=environment,
            purpose="HTTP API",
        )

        self.api = apigw.HttpApi(
            self,
            "Api",
            description=f"photonranch user status ({config.stage}): post and read site messages",
            create_default_stage=False,
            cors_preflight=apigw.CorsPreflightOptions(
                allow_origins=list(config.cors_allowed_origins),
                allow_methods=sorted(
                    {apigw.CorsHttpMethod[route.method] for route in HTTP_ROUTES}
                    | {apigw.CorsHttpMethod.OPTIONS},
                    key=lambda method: method.value,
                ),
                allow_headers=list(cors.ALLOWED_HEADERS),
                expose_headers=list(cors.EXPOSED_HEADERS),
                max_age=Duration.hours(1),
            ),
        )
        self.access_logs = access_log_group(
            self,
            "AccessLogs",
            retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=config.throttle_rate_limit,
                burst_limit=config.throttle_burst_limit,
            ),
            access_log_settings=AccessLogSettings(self.access_logs, HTTP_ACCESS_LOG_FIELDS),
        )

        route_integrations = {
            handler: integrations.HttpLambdaIntegration(f"{function_id(handler)}Integration", fn)
            for handler, fn in self.functions.items()
        }
        for route in HTTP_ROUTES:
            signed = config.post_auth == "iam" and route.posts_messages
            (http_route,) = self.api.add_routes(
                path=route.path,
                methods=[apigw.HttpMethod[route.method]],
                integration=route_integrations[route.handler],
                authorizer=authorizers.HttpIamAuthorizer() if signed else None,
            )
            if not signed:
                acknowledge(
                    http_route,
                    ["AwsSolutions-APIG4", "CT.APIGATEWAY.PR.5"],
                    _open_route_reason(route),
                )
            acknowledge_invoke_permissions(http_route)

    @property
    def url(self) -> str:
        """The invoke URL of the ``$default`` stage (ends with ``/``)."""
        return self.stage.url


def _open_route_reason(route: HttpRoute) -> str:
    if route.posts_messages:
        return (
            f"{route.route_key} stays unsigned while the stage's post_auth is 'none' so the "
            "observatories' existing scripts keep posting; set post_auth='iam' to require SigV4. "
            "Who may post is checked in the function by publish keys (publish_auth audit or "
            "keys: an authorizer cannot see the body's site). Stage throttling bounds abuse."
        )
    return (
        f"{route.route_key} is a public read: the status page shows it to anonymous web "
        "visitors. Stage throttling bounds abuse."
    )
