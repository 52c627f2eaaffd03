"""The one way this app builds a Lambda function: Python 3.13 on arm64 from the shared asset.

Python 3.13, not Lambda's newest 3.14: the tests run the Lambda code on 3.13 (the unit tests in
.venv-lambda, the deployed stack's functions on ministack's 3.13 interpreter), and no 3.14
interpreter can be installed on the machines the tests run on. Move to 3.14 with them: RUNTIME
here and LAMBDA_RUNTIME in the Makefile (a test keeps the two equal).

Each function gets its own role and log group; the role may write only to that log group, so
no function carries the account-wide ``AWSLambdaBasicExecutionRole`` managed policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from userstatus_stack.access_logs import acknowledge_log_group
from userstatus_stack.config import StageConfig
from userstatus_stack.nag import acknowledge

LAMBDA_SOURCE_DIR = Path(__file__).resolve().parent.parent / "lambda_src"
ASSET_EXCLUDES = (
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/tests",
    "**/test_*.py",
    "**/*.egg-info",
    # What installs lambda_src/ editable into the virtualenvs and marks it typed for mypy (not
    # code the functions run).
    "pyproject.toml",
    "build",
    "**/py.typed",
)
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64


def lambda_code() -> lambda_.Code:
    """The single asset every function runs from: the ``lambda_src`` directory, no bundling."""
    return lambda_.Code.from_asset(str(LAMBDA_SOURCE_DIR), exclude=list(ASSET_EXCLUDES))


def function_id(handler: str) -> str:
    """A construct id for the function serving ``handler`` (``userstatus.http_api.handler``)."""
    module = handler.split(".")[-2]
    return "".join(part.capitalize() for part in module.split("_")) + "Handler"


class HandlerFunction(Construct):
    """A function running ``handler`` with its own role and log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        handler: str,
        description: str,
        environment: Mapping[str, str],
        memory_mb: int,
        timeout: Duration,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs {handler}",
        )
        self.function = lambda_.Function(
            self,
            "Function",
            code=code,
            handler=handler,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            description=description,
            environment=dict(environment),
            memory_size=memory_mb,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
        )
        self.log_group.grant_write(self.role)
        acknowledge_log_group(self.log_group)
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            f"{RUNTIME.name}, not the newest runtime: the Lambda code is tested on 3.13 (unit "
            "tests and the deployed-stack tests), and the test machines have no 3.14.",
        )
        acknowledge(
            self.function,
            "CKV_AWS_116",
            "A dead-letter queue catches only asynchronous invocations. API Gateway invokes the "
            "API functions synchronously (the caller gets the error), the broadcaster invokes "
            "the fan-out function synchronously (it counts a failed chunk), and the "
            "broadcaster's event source mapping has its own on-failure destination (the "
            "failure queue).",
        )
        acknowledge(
            self.function,
            ["CKV_AWS_117", "CT.LAMBDA.PR.3"],
            "The functions call only public AWS endpoints (DynamoDB, Lambda, API Gateway's "
            "management API) and reach no private resource. A VPC would need NAT gateways or "
            "interface endpoints in each zone (about $7 a month each) and protect nothing more.",
        )
        acknowledge(
            self.function,
            "CKV_AWS_115",
            "Concurrency is bounded upstream: the API functions by API Gateway's throttling, the "
            "broadcaster by its event source mapping (ParallelizationFactor batches per shard), "
            "the fan-out function by the broadcaster (32 invocations per broadcast). Reserved "
            "concurrency would be taken from the account's unreserved pool (10 in new accounts) "
            "and would throttle viewers' connects in a burst.",
        )
        acknowledge(
            self.function,
            "CKV_AWS_173",
            "The environment holds table names, the stage, modes and an endpoint URL: nothing "
            "secret. Lambda encrypts it at rest with its AWS-managed key.",
        )


def api_functions(
    scope: Construct,
    handlers: Iterable[str],
    *,
    config: StageConfig,
    code: lambda_.Code,
    environment: Mapping[str, str],
    purpose: str,
) -> dict[str, lambda_.Function]:
    """One function per distinct handler, with the stage's API memory and timeout."""
    return {
        handler: HandlerFunction(
            scope,
            function_id(handler),
            code=code,
            handler=handler,
            description=f"photonranch user status {config.stage}: {purpose} ({handler})",
            environment=environment,
            memory_mb=config.api_memory_mb,
            timeout=Duration.seconds(config.api_timeout_seconds),
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        ).function
        for handler in dict.fromkeys(handlers)
    }


def acknowledge_invoke_permissions(route: Construct) -> None:
    """The Control Tower finding on the permissions CDK adds for a route's integration."""
    for permission in route.node.children:
        if isinstance(permission, lambda_.CfnPermission):
            acknowledge(
                permission,
                "CT.LAMBDA.PR.2",
                "The permission is scoped: principal apigateway.amazonaws.com with a SourceArn "
                "of this API's route. The rule accepts only a SourceArn that is a plain string "
                "or a Ref/GetAtt, and CDK builds it with Fn::Join.",
            )
