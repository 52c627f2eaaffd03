"""Acknowledging the security gates' findings: one construct, the rules, one reason.

Three gates check the template (``make test``): cdk-nag's AwsSolutions pack, checkov and the AWS
Control Tower proactive controls run by cfn-guard. A finding that is not fixed is acknowledged
where the resource is built, with ``acknowledge(construct, rules, reason)``; the rule's prefix
says which gate it belongs to:

* ``AwsSolutions-XYZ`` (or ``AwsSolutions-XYZ[finding]``): cdk-nag, as a CDK acknowledgement on
  the construct and its children.
* ``CKV_AWS_N``: checkov, written into the resource's template ``Metadata`` in checkov's own
  form (``checkov: {skip: [{id, comment}]}``), so a hand-run checkov honours it too.
* ``CT.SERVICE.PR.N``: a Control Tower control, written into the resource's ``Metadata`` as
  ``cfn-guard: {acknowledged: [{control, reason}]}``. cfn-guard has no suppression of its own
  for these rules; ``tests/infra/test_infra_gates.py`` drops acknowledged findings and fails
  on any acknowledgement that no finding matches.

checkov and Control Tower acknowledgements go on the construct's own CloudFormation resource
(the construct itself, or its default child), so the template shows each one where it applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Acknowledgment, CfnResource, Validations
from constructs import IConstruct

CHECKOV_METADATA = "checkov"
GUARD_METADATA = "cfn-guard"


def acknowledge(construct: IConstruct, rules: str | Sequence[str], reason: str) -> None:
    """Acknowledge each of ``rules`` (see the module's docstring for the forms) on
    ``construct``, for ``reason``."""
    for rule in [rules] if isinstance(rules, str) else rules:
        if rule.startswith("AwsSolutions-"):
            Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))
        elif rule.startswith("CKV_"):
            _append(construct, CHECKOV_METADATA, "skip", {"id": rule, "comment": reason})
        elif rule.startswith("CT."):
            _append(construct, GUARD_METADATA, "acknowledged", {"control": rule, "reason": reason})
        else:
            raise ValueError(f"{rule!r} is no cdk-nag, checkov or Control Tower rule id")


def _append(construct: IConstruct, key: str, field: str, entry: dict[str, str]) -> None:
    resource = _resource(construct)
    metadata: dict[str, Any] = resource.get_metadata(key) or {field: []}
    metadata[field] = [*metadata[field], entry]
    resource.add_metadata(key, metadata)


def _resource(construct: IConstruct) -> CfnResource:
    if isinstance(construct, CfnResource):
        return construct
    child = construct.node.default_child
    if isinstance(child, CfnResource):
        return child
    raise ValueError(
        f"{construct.node.path} is no CloudFormation resource and has none as its child"
    )
