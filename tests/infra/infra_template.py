"""Reading a synthesized CloudFormation template: resources by type, intrinsics as strings."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
ASSET_HASH_PLACEHOLDER = "<asset-hash>"

Template = Mapping[str, Any]


def normalised(template: Template) -> dict[str, Any]:
    """The template with asset hashes replaced, so Lambda code edits do not change it."""
    text = ASSET_HASH.sub(ASSET_HASH_PLACEHOLDER, json.dumps(template, sort_keys=True))
    result: dict[str, Any] = json.loads(text)
    return result


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id to resource, for every resource of ``resource_type``."""
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def properties(template: Template, logical_id: str) -> dict[str, Any]:
    """The Properties of one resource."""
    props: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return props


def references(value: Any) -> Iterator[str]:
    """Logical ids named by ``Ref`` or ``Fn::GetAtt`` anywhere inside ``value``."""
    if isinstance(value, dict):
        if "Ref" in value:
            yield value["Ref"]
        if "Fn::GetAtt" in value:
            yield value["Fn::GetAtt"][0]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def render(value: Any, names: Mapping[str, str]) -> str:
    """An intrinsic as readable text: ``{"Fn::GetAtt": [id, "Arn"]}`` becomes ``name.Arn``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        ref: str = value["Ref"]
        return f"${{{ref}}}" if ref.startswith("AWS::") else names.get(ref, ref)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id: str = value["Fn::GetAtt"][0]
        attribute: str = value["Fn::GetAtt"][1]
        return f"{names.get(logical_id, logical_id)}.{attribute}"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator: str = value["Fn::Join"][0]
        parts: list[Any] = value["Fn::Join"][1]
        return separator.join(render(part, names) for part in parts)
    return json.dumps(value, sort_keys=True)


def as_list(value: Any) -> list[Any]:
    """IAM fields hold one value or a list."""
    return value if isinstance(value, list) else [value]


def function_by_handler(template: Template) -> dict[str, str]:
    """Handler string to the logical id of the function running it."""
    return {
        resource["Properties"]["Handler"]: logical_id
        for logical_id, resource in resources(template, "AWS::Lambda::Function").items()
    }


def role_statements(
    template: Template, function_id: str, names: Mapping[str, str]
) -> set[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Every Allow statement of the function's role as (sorted actions, rendered resources)."""
    (role_id,) = references(properties(template, function_id)["Role"])
    statements = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            statements.add(
                (
                    tuple(sorted(as_list(statement["Action"]))),
                    tuple(render(r, names) for r in as_list(statement["Resource"])),
                )
            )
    return statements


def routes(template: Template, protocol: str) -> set[tuple[str, str]]:
    """(route key, handler) of every route of the API with ``protocol`` (HTTP or WEBSOCKET)."""
    (api_id,) = [
        logical_id
        for logical_id, api in resources(template, "AWS::ApiGatewayV2::Api").items()
        if api["Properties"]["ProtocolType"] == protocol
    ]
    functions = resources(template, "AWS::Lambda::Function")
    found = set()
    for route in resources(template, "AWS::ApiGatewayV2::Route").values():
        props = route["Properties"]
        if props["ApiId"] != {"Ref": api_id}:
            continue
        (integration_id,) = references(props["Target"])
        integration_uri = properties(template, integration_id)["IntegrationUri"]
        (function_id,) = {ref for ref in references(integration_uri) if ref in functions}
        found.add((props["RouteKey"], functions[function_id]["Properties"]["Handler"]))
    return found
