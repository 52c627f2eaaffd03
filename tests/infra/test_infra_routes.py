"""The synthesized routes are the route table's, and post_auth and the custom domain work."""

from __future__ import annotations

from tests.infra.infra_stacks import TEST_ALARM_TOPIC, TEST_DOMAIN, Synthesized
from tests.infra.infra_template import properties, resources, role_statements, routes
from userstatus.routes import HTTP_ROUTES, WEBSOCKET_ROUTE_SELECTION_EXPRESSION, WEBSOCKET_ROUTES


def test_http_routes_equal_the_route_table(synthesized: Synthesized) -> None:
    assert routes(synthesized.json, "HTTP") == {(r.route_key, r.handler) for r in HTTP_ROUTES}


def test_websocket_routes_equal_the_route_table(synthesized: Synthesized) -> None:
    assert routes(synthesized.json, "WEBSOCKET") == {
        (r.route_key, r.handler) for r in WEBSOCKET_ROUTES
    }
    synthesized.template.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {
            "ProtocolType": "WEBSOCKET",
            "RouteSelectionExpression": WEBSOCKET_ROUTE_SELECTION_EXPRESSION,
        },
    )


def test_websocket_routes_that_answer_have_a_route_response(synthesized: Synthesized) -> None:
    route_ids = {
        props["RouteKey"]: logical_id
        for logical_id, route in resources(synthesized.json, "AWS::ApiGatewayV2::Route").items()
        if (props := route["Properties"])
    }
    answered = {
        response["Properties"]["RouteId"]["Ref"]
        for response in resources(synthesized.json, "AWS::ApiGatewayV2::RouteResponse").values()
    }
    for route in WEBSOCKET_ROUTES:
        route_id = route_ids[route.route_key]
        assert (route_id in answered) == route.returns_response, route.route_key
        selection = properties(synthesized.json, route_id).get("RouteResponseSelectionExpression")
        assert (selection == "$default") == route.returns_response, route.route_key


def test_without_post_auth_every_route_is_open(synthesized: Synthesized) -> None:
    assert synthesized.config.post_auth == "none"
    for route in resources(synthesized.json, "AWS::ApiGatewayV2::Route").values():
        assert route["Properties"]["AuthorizationType"] == "NONE"


def test_iam_post_auth_signs_posts_and_keeps_reads_open(iam_variant: Synthesized) -> None:
    auth_by_route = {
        route["Properties"]["RouteKey"]: route["Properties"]["AuthorizationType"]
        for route in resources(iam_variant.json, "AWS::ApiGatewayV2::Route").values()
    }
    for http_route in HTTP_ROUTES:
        expected = "AWS_IAM" if http_route.posts_messages else "NONE"
        assert auth_by_route[http_route.route_key] == expected
    assert routes(iam_variant.json, "WEBSOCKET") == {
        (r.route_key, r.handler) for r in WEBSOCKET_ROUTES if not r.posts_messages
    }
    for route in WEBSOCKET_ROUTES:
        if not route.posts_messages:
            assert auth_by_route[route.route_key] == "NONE"


def test_iam_post_auth_takes_message_writes_from_the_websocket_function(
    iam_variant: Synthesized,
) -> None:
    stack = iam_variant.stack
    websocket_fn = next(iter(stack.websocket_api.functions.values()))
    messages = iam_variant.logical_id(stack.storage.messages_table)
    statements = role_statements(
        iam_variant.json, iam_variant.logical_id(websocket_fn), {messages: "messages"}
    )
    assert statements
    assert not [s for s in statements if "messages.Arn" in s[1]]


def test_alarm_topic_receives_every_alarm(iam_variant: Synthesized) -> None:
    alarms = resources(iam_variant.json, "AWS::CloudWatch::Alarm").values()
    assert alarms
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [TEST_ALARM_TOPIC]
    # An existing topic is used as it is: the stack creates none.
    assert not resources(iam_variant.json, "AWS::SNS::Topic")
    assert iam_variant.json["Outputs"]["AlarmTopicArn"]["Value"] == TEST_ALARM_TOPIC


def test_custom_domain_maps_the_http_api_under_the_stage_key(
    domain_variant: Synthesized,
) -> None:
    config = domain_variant.config
    domain = config.custom_domain
    assert domain is not None
    assert domain.api_mapping_key == {"prod": "logs", "dev": "dev"}[config.stage]
    mappings = resources(domain_variant.json, "AWS::ApiGatewayV2::ApiMapping")
    (mapping,) = mappings.values()
    http_api = domain_variant.logical_id(domain_variant.stack.http_api.api)
    assert mapping["Properties"]["ApiId"] == {"Ref": http_api}
    assert mapping["Properties"]["ApiMappingKey"] == domain.api_mapping_key
    assert (
        mapping["Properties"]["Stage"]
        == {"Ref": domain_variant.logical_id(domain_variant.stack.http_api.stage)}
        or mapping["Properties"]["Stage"] == "$default"
    )
    assert domain_variant.json["Outputs"]["CustomDomainUrl"]["Value"] == (
        f"https://{TEST_DOMAIN.domain_name}/{domain.api_mapping_key}/"
    )


def test_only_the_owning_stage_creates_the_domain_name(domain_variant: Synthesized) -> None:
    owns = domain_variant.config.stage == "prod"
    domain_names = resources(domain_variant.json, "AWS::ApiGatewayV2::DomainName")
    records = resources(domain_variant.json, "AWS::Route53::RecordSet")
    if not owns:
        assert domain_names == {}
        assert records == {}
        return
    (domain_name,) = domain_names.values()
    assert domain_name["Properties"]["DomainName"] == TEST_DOMAIN.domain_name
    assert domain_name["Properties"]["DomainNameConfigurations"] == [
        {
            "CertificateArn": TEST_DOMAIN.certificate_arn,
            "EndpointType": "REGIONAL",
            "SecurityPolicy": "TLS_1_2",
        }
    ]
    (record,) = records.values()
    assert record["Properties"]["Type"] == "A"
    assert record["Properties"]["HostedZoneId"] == TEST_DOMAIN.hosted_zone_id


def test_custom_domain_is_off_by_default(synthesized: Synthesized) -> None:
    assert resources(synthesized.json, "AWS::ApiGatewayV2::ApiMapping") == {}
    assert resources(synthesized.json, "AWS::ApiGatewayV2::DomainName") == {}
