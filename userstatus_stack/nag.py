"""Acknowledging cdk-nag findings: one construct, one rule (or one finding), one reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge ``rule_id`` (``AwsSolutions-XYZ`` or ``AwsSolutions-XYZ[finding]``) here."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))
