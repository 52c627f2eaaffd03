"""An optional custom domain for the HTTP API, e.g. ``https://logs.photonranch.org/logs/newlog``.

The WebSocket API keeps its execute-api URL: API Gateway does not map WebSocket APIs onto a
domain name that also serves HTTP APIs.
"""

from __future__ import annotations

from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

from userstatus_stack.config import CustomDomain


class CustomDomainMapping(Construct):
    """Maps the HTTP API's ``$default`` stage under ``api_mapping_key`` of the domain.

    With ``owns_domain`` it also creates the regional API Gateway domain name (TLS 1.2) and the
    Route 53 alias record; otherwise the domain name must already exist (created by the stage
    that owns it).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        domain: CustomDomain,
        http_api: apigw.IHttpApi,
        http_stage: apigw.HttpStage,
    ) -> None:
        super().__init__(scope, construct_id)
        if domain.owns_domain:
            domain_name = apigw.DomainName(
                self,
                "DomainName",
                domain_name=domain.domain_name,
                certificate=acm.Certificate.from_certificate_arn(
                    self, "Certificate", domain.certificate_arn
                ),
                endpoint_type=apigw.EndpointType.REGIONAL,
                security_policy=apigw.SecurityPolicy.TLS_1_2,
            )
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self,
                "Zone",
                hosted_zone_id=domain.hosted_zone_id,
                zone_name=domain.hosted_zone_name,
            )
            route53.ARecord(
                self,
                "AliasRecord",
                zone=zone,
                record_name=domain.domain_name,
                target=route53.RecordTarget.from_alias(
                    targets.ApiGatewayv2DomainProperties(
                        domain_name.regional_domain_name, domain_name.regional_hosted_zone_id
                    )
                ),
            )
            apigw.ApiMapping(
                self,
                "ApiMapping",
                api=http_api,
                domain_name=domain_name,
                stage=http_stage,
                api_mapping_key=domain.api_mapping_key,
            )
        else:
            mapping = apigw.CfnApiMapping(
                self,
                "ApiMapping",
                api_id=http_api.api_id,
                domain_name=domain.domain_name,
                stage=http_stage.stage_name,
                api_mapping_key=domain.api_mapping_key,
            )
            mapping.node.add_dependency(http_stage)
        self.url = f"https://{domain.domain_name}/{domain.api_mapping_key}/"
