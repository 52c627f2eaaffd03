"""The template deployed into ministack is the synthesized one with the documented substitutions
(``userstatus_local.deployed.substitute_for_ministack``) and not one property more."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.infra.infra_stacks import Synthesized
from tests.infra.infra_template import resources
from userstatus_local.deployed import (
    MANAGEMENT_ENDPOINT_VARIABLE,
    ROUTE_RESPONSE,
    DeployError,
    substitute_for_ministack,
)

GATEWAY = "https://127.0.0.1:4566"


def differing_paths(before: Any, after: Any, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The paths (keys, list indexes as text) where two JSON documents differ, shallowest."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: set[tuple[str, ...]] = set()
        for key in before.keys() | after.keys():
            if key not in before or key not in after:
                found.add((*path, key))
            else:
                found |= differing_paths(before[key], after[key], (*path, key))
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = set()
        for index, (a, b) in enumerate(zip(before, after, strict=True)):
            found |= differing_paths(a, b, (*path, str(index)))
        return found
    return set() if before == after else {path}


def test_substitutions_change_exactly_what_they_list(synthesized: Synthesized) -> None:
    original = copy.deepcopy(synthesized.json)
    substituted, changes = substitute_for_ministack(synthesized.json, GATEWAY)

    assert synthesized.json == original, "the synthesized template itself is left as it was"
    differences = differing_paths(original, substituted)
    listed = [change.path for change in changes]
    # Every difference lies under a listed substitution, and every listed one changed something.
    assert [d for d in differences if not any(d[: len(p)] == p for p in listed)] == []
    assert [p for p in listed if not any(d[: len(p)] == p for d in differences)] == []
    assert all(len(change.reason) > 40 for change in changes)


def test_route_responses_are_left_out_and_nothing_refers_to_them(synthesized: Synthesized) -> None:
    route_responses = set(resources(synthesized.json, ROUTE_RESPONSE))
    assert route_responses, "the stack returns route responses; the substitution has work"
    substituted, changes = substitute_for_ministack(synthesized.json, GATEWAY)

    assert resources(substituted, ROUTE_RESPONSE) == {}
    removed = {change.path for change in changes if len(change.path) == 2}
    assert removed == {("Resources", name) for name in route_responses}
    assert not any(name in str(substituted) for name in route_responses)


def test_management_endpoint_becomes_ministacks_path_based_url(synthesized: Synthesized) -> None:
    substituted, _ = substitute_for_ministack(synthesized.json, GATEWAY)
    # The broadcaster and the fan-out function both post.
    endpoints = [
        resource["Properties"]["Environment"]["Variables"][MANAGEMENT_ENDPOINT_VARIABLE]
        for resource in resources(substituted, "AWS::Lambda::Function").values()
        if MANAGEMENT_ENDPOINT_VARIABLE in resource["Properties"]["Environment"]["Variables"]
    ]
    assert len(endpoints) == 2
    api_id = synthesized.logical_id(synthesized.stack.websocket_api.api)
    for endpoint in endpoints:
        assert endpoint == {
            "Fn::Join": [
                "",
                [
                    f"{GATEWAY}/_aws/execute-api/",
                    {"Ref": api_id},
                    f"/{synthesized.config.stage}",
                ],
            ]
        }


def test_an_unexpected_management_endpoint_is_refused(synthesized: Synthesized) -> None:
    # Given a template whose endpoint is not the shape the substitution knows
    template = copy.deepcopy(synthesized.json)
    for resource in resources(template, "AWS::Lambda::Function").values():
        variables = resource["Properties"]["Environment"]["Variables"]
        if MANAGEMENT_ENDPOINT_VARIABLE in variables:
            variables[MANAGEMENT_ENDPOINT_VARIABLE] = "https://example.org/dev"
    # Then the deploy stops with a clear error instead of deploying something else
    with pytest.raises(DeployError, match="update the substitution"):
        substitute_for_ministack(template, GATEWAY)
