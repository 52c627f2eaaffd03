"""The stack deployed into ministack: what was deployed, and ``make stack-local`` end to end."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from userstatus_local.deployed import REPOSITORY_ROOT, DeployedStack, substitute_for_ministack

READY_DEADLINE = 90.0


def test_deployed_template_is_the_synthesized_one_with_the_substitutions(
    deployed_stack: DeployedStack,
) -> None:
    synthesized = json.loads((deployed_stack.work_dir / "synthesized.template.json").read_text())
    deployed = json.loads(
        (
            deployed_stack.work_dir / "cdk.out" / "photonranch-userstatus-dev.template.json"
        ).read_text()
    )
    assert deployed == substitute_for_ministack(synthesized, deployed_stack.gateway)[0]
    stack = deployed_stack.client("cloudformation").describe_stacks(
        StackName="photonranch-userstatus-dev"
    )["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_http_api_has_the_templates_cors_configuration(deployed_stack: DeployedStack) -> None:
    synthesized = json.loads((deployed_stack.work_dir / "synthesized.template.json").read_text())
    [expected] = [
        resource["Properties"]["CorsConfiguration"]
        for resource in synthesized["Resources"].values()
        if resource["Type"] == "AWS::ApiGatewayV2::Api"
        and resource["Properties"]["ProtocolType"] == "HTTP"
    ]
    api_id = deployed_stack.http_url.rsplit("/", 1)[-1]
    answer = deployed_stack.client("apigatewayv2").get_api(ApiId=api_id)
    assert answer["CorsConfiguration"] == expected


def ministack_files() -> set[Path]:
    """What ministack or a deployment could leave in the system's temporary directory."""
    return {
        path
        for path in Path(tempfile.gettempdir()).iterdir()
        if path.name.startswith(("ministack", "userstatus-ministack-"))
    }


def processes_inside(directory: Path) -> list[str]:
    """Processes whose working directory is ``directory`` or below it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cwd == str(directory) or cwd.startswith(f"{directory}/"):
            found.append(f"{entry.name}: {command}")
    return found


def test_stack_local_prints_ready_serves_and_ctrl_c_leaves_nothing_behind() -> None:
    # Given `make stack-local STAGE=prod` (the other stage than the session's deployment)
    before = ministack_files()
    process = subprocess.Popen(
        [sys.executable, "-m", "userstatus_local.deployed", "--stage", "prod"],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        started = time.monotonic()
        assert process.stdout is not None
        lines = []
        for raw in process.stdout:
            lines.append(raw.decode())
            if raw.startswith(b"READY ") or time.monotonic() - started > READY_DEADLINE:
                break
        ready_after = time.monotonic() - started
        # Then it prints the READY line within 90 s
        assert lines, "no output"
        assert lines[-1].startswith("READY "), "".join(lines)
        assert ready_after < READY_DEADLINE
        fields = dict(part.split("=", 1) for part in lines[-1].split()[1:])
        assert fields["iam"] == "enforced"
        assert fields["http"].startswith("https://127.0.0.1:")
        assert fields["ws"].startswith("wss://127.0.0.1:")
        assert fields["ws"].endswith("/prod")
        assert fields["management"].startswith("https://127.0.0.1:")
        work_dir = Path(fields["ca"]).parents[2]
        assert work_dir.name.startswith("userstatus-ministack-")

        # And a client given those URLs and that certificate needs nothing else
        context = ssl.create_default_context(cafile=fields["ca"])
        body = json.dumps({"site": "stacklocal", "log_message": "hello"}).encode()
        request = urllib.request.Request(fields["http"] + "/newlog", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=10, context=context) as answer:
            assert json.loads(answer.read())["message"] == "hello"
        assert processes_inside(work_dir)

        # When Ctrl-C is pressed
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        stderr = process.stderr.read().decode()
        process.stderr.close()
    # Then nothing it started is running and nothing it wrote is left
    assert processes_inside(work_dir) == []
    assert not work_dir.exists()
    assert ministack_files() - before == set()
    assert "stopped" in stderr
