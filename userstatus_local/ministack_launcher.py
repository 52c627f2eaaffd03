"""Starts ministack for ``userstatus_local.deployed``, optionally recording its IAM checks.

This file runs on ministack's own interpreter (``.tools/ministack/bin/python``), which has
ministack and its pinned botocore but none of the project's packages; nothing imports it.

With ``USERSTATUS_IAM_RECORD=<file>`` set, every authorization check ministack makes under
``AUTH=true`` is appended to that file as one JSON line: the caller's principal ARN, the IAM
action, the resource ARN and whether it was allowed. That is how the tests learn which AWS calls
each function really made (ministack's CloudTrail records neither denied calls nor the
``@connections`` API). It wraps ``ministack.core.iam_evaluator.enforce``, which every call site
imports at call time; if the pinned ministack no longer has it with the same parameters, the
launcher exits at once with status 3 and says so, rather than record nothing.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import threading
from typing import Any

RECORD_VARIABLE = "USERSTATUS_IAM_RECORD"
EXPECTED_ENFORCE_PARAMETERS = (
    "access_key_id",
    "iam_action",
    "service",
    "region",
    "resource_arn",
    "service_context",
)


def main() -> None:
    """Install the recorder if asked for, then run ministack's own entry point."""
    record_path = os.environ.get(RECORD_VARIABLE)
    if record_path:
        record_iam_checks(record_path)
    from ministack import app

    app.main()


def record_iam_checks(path: str) -> None:
    """Wrap ministack's IAM ``enforce`` so that each check is appended to ``path``."""
    from ministack.core import iam_evaluator

    original: Any = getattr(iam_evaluator, "enforce", None)
    parameters = tuple(inspect.signature(original).parameters) if callable(original) else ()
    if original is None or parameters != EXPECTED_ENFORCE_PARAMETERS:
        sys.stderr.write(
            "ministack_launcher: ministack.core.iam_evaluator.enforce is missing or its "
            f"parameters changed ({parameters!r}); update userstatus_local/ministack_launcher.py "
            "for the pinned ministack\n"
        )
        sys.exit(3)
    lock = threading.Lock()
    output = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (open for the process)

    def enforce(
        access_key_id: str,
        iam_action: str,
        service: str,
        region: str,
        resource_arn: str = "*",
        service_context: dict[str, Any] | None = None,
    ) -> Any:
        result = original(access_key_id, iam_action, service, region, resource_arn, service_context)
        identity = iam_evaluator.resolve_caller_identity(access_key_id or "") or {}
        line = json.dumps(
            {
                "principal": identity.get("userArn", ""),
                "action": iam_action,
                "resource": resource_arn,
                "allowed": result is None,
            }
        )
        with lock:
            output.write(line + "\n")
        return result

    iam_evaluator.enforce = enforce


if __name__ == "__main__":
    main()
