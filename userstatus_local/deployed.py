"""The real stack of a stage, deployed by the project's CDK CLI into ministack on this machine.

``python -m userstatus_local.deployed --stage dev`` (``make stack-local``) and the tests'
deployed target both run :meth:`DeployedStack.start`:

1. ministack (``.tools/ministack``, pinned in ``requirements-ministack.txt``) on a free port of
   127.0.0.1, with IAM enforced (``AUTH=true``) and TLS on (``USE_SSL=1``): its self-signed
   certificate is made for this run in the run's own directory and trusted explicitly, by file,
   by the CDK CLI (``AWS_CA_BUNDLE``), by our clients and by ministack's Lambda workers (ministack
   points them at it); verification is never turned off.
2. ``cdk synth -c stage=<stage>`` into the run's directory, at the same time.
3. The documented substitutions (:func:`substitute_for_ministack`) on the synthesized template,
   and nothing else.
4. ``cdk bootstrap`` and ``cdk deploy`` of that assembly with the project's pinned CLI.

The stack's outputs become ministack's path-based URLs, printed as one line on stdout::

    READY http=https://127.0.0.1:PORT/_aws/execute-api/ID ws=wss://... management=https://...
    iam=enforced ca=/tmp/userstatus-ministack-.../tmp/ministack-tls/server.crt ...

:meth:`DeployedStack.stop` stops ministack and its Lambda workers (one process group) and
removes the run's directory, which holds everything the run wrote: ministack's temporary files
and Lambda work directories (its ``TMPDIR``), the cloud assembly, the CLI's cache (``CDK_HOME``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

from userstatus.config import PUBLISH_AUTH_MODES

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
MINISTACK_PYTHON = REPOSITORY_ROOT / ".tools" / "ministack" / "bin" / "python"
CDK_CLI = REPOSITORY_ROOT / ".tools" / "node_modules" / ".bin" / "cdk"
LAUNCHER = Path(__file__).resolve().parent / "ministack_launcher.py"

ACCOUNT = "000000000000"  # ministack takes a 12-digit access key as that account's root
ROOT_CREDENTIALS = {"AWS_ACCESS_KEY_ID": ACCOUNT, "AWS_SECRET_ACCESS_KEY": "test"}
REGION = "us-east-1"
DEFAULT_STAGE = "dev"
STAGES = ("dev", "prod")

# Variables that would make ministack's Lambda workers (which inherit its environment) trust the
# host's CA bundle instead of ministack's certificate, or send them to another endpoint.
_CA_VARIABLES = (
    "AWS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CURL_CA_BUNDLE",
)
LOCAL_ALARM_EMAIL = "alarms@userstatus-local.invalid"
STEP_TIMEOUTS = {"synth": 300.0, "bootstrap": 180.0, "deploy": 300.0}
READY_TIMEOUT = 60.0
ROUTE_RESPONSE = "AWS::ApiGatewayV2::RouteResponse"
MANAGEMENT_ENDPOINT_VARIABLE = "WEBSOCKET_MANAGEMENT_ENDPOINT"


class DeployError(RuntimeError):
    """ministack did not start, or a CDK step failed; the message says which and why."""


@dataclass(frozen=True)
class Substitution:
    """One change made to the synthesized template so ministack can deploy and serve it."""

    path: tuple[str, ...]
    reason: str


def substitute_for_ministack(
    template: Mapping[str, Any], gateway: str
) -> tuple[dict[str, Any], list[Substitution]]:
    """The template ministack deploys: ``template`` with exactly these substitutions.

    - Every ``AWS::ApiGatewayV2::RouteResponse`` is left out: ministack refuses the type
      ("Unrecognized resource types"). Its WebSocket data plane sends every route's
      integration body to the sender anyway, which is what the route responses ask for.
    - The broadcaster's ``WEBSOCKET_MANAGEMENT_ENDPOINT``, in AWS
      ``https://{api}.execute-api.{region}.amazonaws.com/{stage}``, becomes ministack's
      path-based ``{gateway}/_aws/execute-api/{api}/{stage}``: the real host name does not
      resolve offline, and ministack routes only the path form to an API.

    Raises ``DeployError`` if the template no longer has the shape these assume.
    """
    result: dict[str, Any] = json.loads(json.dumps(template))
    resources: dict[str, Any] = result["Resources"]
    changes: list[Substitution] = []
    removed = sorted(name for name, res in resources.items() if res["Type"] == ROUTE_RESPONSE)
    for name in removed:
        del resources[name]
        changes.append(
            Substitution(
                ("Resources", name),
                f"ministack refuses {ROUTE_RESPONSE}; its WebSocket data plane always sends "
                "the integration's body to the sender",
            )
        )
    referenced = _references(result) & set(removed)
    if referenced:
        raise DeployError(f"resources still refer to removed route responses: {referenced}")

    for name, resource in resources.items():
        variables = (
            resource.get("Properties", {}).get("Environment", {}).get("Variables", {})
            if resource["Type"] == "AWS::Lambda::Function"
            else {}
        )
        if MANAGEMENT_ENDPOINT_VARIABLE not in variables:
            continue
        api, stage_path = _management_endpoint_parts(variables[MANAGEMENT_ENDPOINT_VARIABLE])
        variables[MANAGEMENT_ENDPOINT_VARIABLE] = {
            "Fn::Join": ["", [f"{gateway}/_aws/execute-api/", api, stage_path]]
        }
        changes.append(
            Substitution(
                (
                    "Resources",
                    name,
                    "Properties",
                    "Environment",
                    "Variables",
                    MANAGEMENT_ENDPOINT_VARIABLE,
                ),
                "the execute-api host name does not resolve offline; ministack serves "
                "@connections under its path-based URL",
            )
        )
    if not any(change.path[-1] == MANAGEMENT_ENDPOINT_VARIABLE for change in changes):
        raise DeployError(
            f"no function has {MANAGEMENT_ENDPOINT_VARIABLE}: update the substitution"
        )
    return result, changes


def _apply_cors_configuration(
    template: Mapping[str, Any], api_id: str, *, gateway: str, ca_path: Path
) -> Substitution:
    """Give the deployed HTTP API the template's ``CorsConfiguration`` through its own API.

    ministack drops the property when CloudFormation creates the API (``GetApi`` then shows
    none and every preflight is refused 403), but serves preflights from a configuration set
    with ``UpdateApi``, as API Gateway serves them from the template's.
    """
    import boto3

    [(name, api)] = [
        (name, resource)
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::ApiGatewayV2::Api"
        and resource["Properties"].get("ProtocolType") == "HTTP"
    ]
    client = boto3.client(
        "apigatewayv2",
        endpoint_url=gateway,
        region_name=REGION,
        verify=str(ca_path),
        aws_access_key_id=ROOT_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=ROOT_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    client.update_api(ApiId=api_id, CorsConfiguration=api["Properties"]["CorsConfiguration"])
    return Substitution(
        ("Resources", name, "Properties", "CorsConfiguration"),
        "ministack drops an HTTP API's CorsConfiguration from CloudFormation; the same "
        "configuration is set with UpdateApi after the deploy",
    )


def _management_endpoint_parts(value: Any) -> tuple[Any, str]:
    """The WebSocket API reference and the ``/stage`` of the stage's callback URL.

    CDK writes it as ``https://`` + Ref(api) + ``.execute-api.`` + Ref(AWS::Region) + ``.`` +
    Ref(AWS::URLSuffix) + ``/{stage}``.
    """
    join = value.get("Fn::Join") if isinstance(value, dict) else None
    separator, parts = join if isinstance(join, list) and len(join) == 2 else (None, [])
    shape = [
        "https://",
        None,
        ".execute-api.",
        {"Ref": "AWS::Region"},
        ".",
        {"Ref": "AWS::URLSuffix"},
    ]
    matches = (
        separator == ""
        and isinstance(parts, list)
        and len(parts) == len(shape) + 1
        and all(want is None or part == want for part, want in zip(parts, shape, strict=False))
        and isinstance(parts[1], dict)
        and set(parts[1]) == {"Ref"}
        and isinstance(parts[-1], str)
        and parts[-1].startswith("/")
    )
    if not matches:
        raise DeployError(
            f"{MANAGEMENT_ENDPOINT_VARIABLE} is no longer "
            "https://{api}.execute-api.{region}.{suffix}/{stage}: update the substitution "
            f"(got {json.dumps(value)})"
        )
    return parts[1], parts[-1]


def _references(node: Any) -> set[str]:
    """Logical ids named by Ref, Fn::GetAtt or DependsOn anywhere under ``node``."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                found.add(target)
            elif key == "DependsOn":
                found.update([value] if isinstance(value, str) else value)
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


@dataclass
class DeployedStack:
    """ministack with one stage's stack deployed, and where its APIs are reached."""

    stage: str
    work_dir: Path
    process: subprocess.Popen[bytes]
    gateway: str
    ca_path: Path
    outputs: dict[str, str]
    http_url: str
    ws_url: str
    management_endpoint: str
    timings: dict[str, float]
    substitutions: list[Substitution]
    iam_record: Path | None
    _log: IO[bytes] = field(repr=False)

    @classmethod
    def start(
        cls,
        stage: str = DEFAULT_STAGE,
        *,
        publish_auth: str | None = None,
        record_iam: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> Self:
        """Start ministack, synthesize, bootstrap and deploy ``stage`` (with ``publish_auth``
        instead of the stage's own if given: ``-c publish_auth=...``); stopped on any error."""
        if stage not in STAGES:
            raise DeployError(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
        for tool in (MINISTACK_PYTHON, CDK_CLI):
            if not tool.exists():
                raise DeployError(f"{tool} is missing: run `make setup` first")
        say = progress or (lambda text: None)
        work_dir = Path(tempfile.mkdtemp(prefix="userstatus-ministack-"))
        (work_dir / "tmp").mkdir()
        iam_record = work_dir / "iam-checks.jsonl" if record_iam else None
        log = (work_dir / "ministack.log").open("wb")
        timings: dict[str, float] = {}
        port = _free_port()
        gateway = f"https://127.0.0.1:{port}"
        started = time.monotonic()
        process = _start_ministack(port, work_dir, log, iam_record)
        try:
            synth = _start_cdk(
                [
                    "synth",
                    "-c",
                    f"stage={stage}",
                    # Every stage gets an alarm destination (prod requires one): ministack
                    # creates the subscription and sends no email.
                    "-c",
                    f"alarm_email={LOCAL_ALARM_EMAIL}",
                    *(["-c", f"publish_auth={publish_auth}"] if publish_auth else []),
                    "-o",
                    str(work_dir / "cdk.out"),
                    "--quiet",
                ],
                work_dir,
                {},
            )
            ca_path = _wait_until_ready(process, port, work_dir)
            timings["ministack"] = time.monotonic() - started
            say(f"ministack ready on {gateway} in {timings['ministack']:.1f} s")
            _finish(synth, "synth", STEP_TIMEOUTS["synth"], work_dir)
            timings["synth"] = time.monotonic() - started
            say(f"synthesized {stage} in {timings['synth']:.1f} s (alongside ministack's start)")

            assembly = work_dir / "cdk.out"
            template_path = assembly / f"photonranch-userstatus-{stage}.template.json"
            original = json.loads(template_path.read_text())
            shutil.copy(template_path, work_dir / "synthesized.template.json")
            deployed, substitutions = substitute_for_ministack(original, gateway)
            template_path.write_text(json.dumps(deployed, indent=1))

            aws = _aws_environment(port, ca_path)
            step_start = time.monotonic()
            _run_cdk(
                ["bootstrap", f"aws://{ACCOUNT}/{REGION}", "--app", "cdk.out"],
                work_dir,
                aws,
                "bootstrap",
            )
            timings["bootstrap"] = time.monotonic() - step_start
            say(f"bootstrapped in {timings['bootstrap']:.1f} s")
            step_start = time.monotonic()
            _run_cdk(
                [
                    "deploy",
                    f"photonranch-userstatus-{stage}",
                    "--app",
                    "cdk.out",
                    "--require-approval",
                    "never",
                    "--outputs-file",
                    "outputs.json",
                ],
                work_dir,
                aws,
                "deploy",
            )
            timings["deploy"] = time.monotonic() - step_start
            timings["total"] = time.monotonic() - started
            say(f"deployed in {timings['deploy']:.1f} s ({timings['total']:.1f} s in all)")
            outputs = json.loads((work_dir / "outputs.json").read_text())[
                f"photonranch-userstatus-{stage}"
            ]
            http_api_id = _api_id(outputs["HttpApiUrl"])
            substitutions.append(
                _apply_cors_configuration(deployed, http_api_id, gateway=gateway, ca_path=ca_path)
            )
        except BaseException:
            _stop_process(process)
            log.close()
            tail = _tail(work_dir / "ministack.log")
            shutil.rmtree(work_dir, ignore_errors=True)
            sys.stderr.write(f"ministack's log (last lines):\n{tail}\n")
            raise
        websocket_api_id = _api_id(outputs["WebSocketUrl"])
        ws_stage = outputs["WebSocketUrl"].rstrip("/").rsplit("/", 1)[-1]
        return cls(
            stage=stage,
            work_dir=work_dir,
            process=process,
            gateway=gateway,
            ca_path=ca_path,
            outputs=outputs,
            http_url=f"{gateway}/_aws/execute-api/{http_api_id}",
            ws_url=f"wss://127.0.0.1:{port}/_aws/execute-api/{websocket_api_id}/{ws_stage}",
            management_endpoint=f"{gateway}/_aws/execute-api/{websocket_api_id}/{ws_stage}",
            timings=timings,
            substitutions=substitutions,
            iam_record=iam_record,
            _log=log,
        )

    @property
    def messages_table(self) -> str:
        return self.outputs["MessagesTableName"]

    @property
    def connections_table(self) -> str:
        return self.outputs["ConnectionsTableName"]

    @property
    def publish_keys_table(self) -> str:
        return self.outputs["PublishKeysTableName"]

    def ready_line(self) -> str:
        """The machine-readable line ``make stack-local`` prints once the stack is up."""
        return (
            f"READY http={self.http_url} ws={self.ws_url} management={self.management_endpoint} "
            f"iam=enforced ca={self.ca_path} aws={self.gateway} region={REGION} "
            f"messages_table={self.messages_table} connections_table={self.connections_table} "
            f"keys_table={self.publish_keys_table}"
        )

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts this run's certificate (and verifies it)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client(self, service: str, **credentials: str) -> Any:
        """A boto3 client of ministack (the account's root unless credentials are given)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.gateway,
            region_name=REGION,
            verify=str(self.ca_path),
            aws_access_key_id=credentials.get("access_key", ACCOUNT),
            aws_secret_access_key=credentials.get("secret_key", "test"),
            aws_session_token=credentials.get("token"),
        )

    def iam_checks(self) -> list[dict[str, Any]]:
        """Every IAM check ministack made so far (only with ``record_iam=True``)."""
        if self.iam_record is None or not self.iam_record.exists():
            return []
        return [json.loads(line) for line in self.iam_record.read_text().splitlines() if line]

    def ministack_log(self) -> str:
        """What ministack has written to its log so far."""
        return (self.work_dir / "ministack.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop ministack and its workers, and remove everything the run wrote."""
        try:
            _stop_process(self.process)
        finally:
            self._log.close()
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _base_environment() -> dict[str, str]:
    """This process's environment without AWS settings or CA overrides."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "CDK_")) and name not in _CA_VARIABLES
    }


def _start_ministack(
    port: int, work_dir: Path, log: IO[bytes], iam_record: Path | None
) -> subprocess.Popen[bytes]:
    env = {
        **_base_environment(),
        "BIND_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "AUTH": "true",
        "USE_SSL": "1",
        "TMPDIR": str(work_dir / "tmp"),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if iam_record is not None:
        env["USERSTATUS_IAM_RECORD"] = str(iam_record)
    command = [str(MINISTACK_PYTHON), str(LAUNCHER)]
    if os.geteuid() == 0:
        # As root, ministack would also listen on 127.0.0.1:443 (for Cognito token issuers):
        # without the capability to bind low ports it stays on its own free port.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise DeployError(
                "running as root needs setpriv (util-linux) to keep ministack off :443"
            )
        command = [
            setpriv,
            "--bounding-set=-net_bind_service",
            "--inh-caps=-net_bind_service",
            *command,
        ]
    return subprocess.Popen(  # noqa: S603 (fixed command)
        command,
        cwd=work_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, work_dir: Path) -> Path:
    """Wait for ministack's certificate and a healthy answer over TLS; the certificate's path."""
    ca_path = work_dir / "tmp" / "ministack-tls" / "server.crt"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DeployError(f"ministack exited with status {process.returncode}")
        if ca_path.exists():
            try:
                context = ssl.create_default_context(cafile=str(ca_path))
                url = f"https://127.0.0.1:{port}/_ministack/health"
                with urllib.request.urlopen(url, timeout=2, context=context) as answer:
                    if answer.status == 200:
                        return ca_path
            except (OSError, ssl.SSLError):
                pass
        time.sleep(0.1)
    raise DeployError(f"ministack was not healthy within {READY_TIMEOUT:.0f} s")


def _aws_environment(port: int, ca_path: Path) -> dict[str, str]:
    # The CLI checks the bootstrap template's S3 URL against the endpoint and special-cases
    # only the host name localhost (the certificate covers it as well as 127.0.0.1).
    return {
        **ROOT_CREDENTIALS,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": f"https://localhost:{port}",
        "AWS_CA_BUNDLE": str(ca_path),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _cdk_environment(work_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    tool_paths = [str(CDK_CLI.parent), str(Path(sys.executable).parent)]
    return {
        **_base_environment(),
        "PATH": os.pathsep.join([*tool_paths, os.environ.get("PATH", "")]),
        "CDK_HOME": str(work_dir / "cdk-home"),
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        **extra,
    }


def _start_cdk(
    arguments: list[str], work_dir: Path, extra: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """``cdk <arguments>`` for the project's app, run from the repository root."""
    name = arguments[0]
    output = (work_dir / f"cdk-{name}.log").open("wb")
    try:
        return subprocess.Popen(  # noqa: S603 (the project's CLI, fixed arguments)
            [str(CDK_CLI), *arguments, "--no-notices", "--ci"],
            cwd=REPOSITORY_ROOT if name == "synth" else work_dir,
            env=_cdk_environment(work_dir, extra),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    finally:
        output.close()


def _finish(process: subprocess.Popen[bytes], name: str, timeout: float, work_dir: Path) -> None:
    try:
        status = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise DeployError(f"cdk {name} took longer than {timeout:.0f} s") from None
    if status != 0:
        raise DeployError(
            f"cdk {name} failed with status {status}:\n{_tail(work_dir / f'cdk-{name}.log')}"
        )


def _run_cdk(arguments: list[str], work_dir: Path, extra: Mapping[str, str], name: str) -> None:
    _finish(_start_cdk(arguments, work_dir, extra), name, STEP_TIMEOUTS[name], work_dir)


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM ministack's process group, SIGKILL it after a few seconds (safe: no state kept)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _api_id(url: str) -> str:
    """``abc123`` of ``https://abc123.execute-api.us-east-1.amazonaws.com/...``."""
    host = url.split("://", 1)[1].split("/", 1)[0]
    return host.split(".", 1)[0]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def main(argv: list[str] | None = None) -> int:
    """Deploy a stage into ministack, print READY, serve until Ctrl-C, then clean up."""
    parser = argparse.ArgumentParser(
        prog="python -m userstatus_local.deployed",
        description="Deploy the synthesized stack of a stage into ministack on this machine.",
    )
    parser.add_argument("--stage", default=DEFAULT_STAGE, choices=STAGES)
    parser.add_argument(
        "--publish-auth",
        choices=PUBLISH_AUTH_MODES,
        help="deploy with this publish mode instead of the stage's (-c publish_auth=...)",
    )
    options = parser.parse_args(argv)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        stack = DeployedStack.start(
            options.stage, publish_auth=options.publish_auth, progress=progress
        )
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        print(f"HTTP API    {stack.http_url}  (POST /newlog, GET /recent-logs, GET /onlineusers)")
        print(f"WebSocket   {stack.ws_url}?site=tst")
        print(f"Management  {stack.management_endpoint}/@connections/{{id}}  (SigV4)")
        print(f"AWS APIs    {stack.gateway}  (account {ACCOUNT}, region {REGION}, IAM enforced)")
        print(f"Certificate {stack.ca_path}  (trust it: curl --cacert, AWS_CA_BUNDLE)")
        print(
            f"Try: curl --cacert {stack.ca_path} -X POST {stack.http_url}/newlog "
            """-d '{"site": "tst", "log_message": "hello"}'"""
        )
        print(stack.ready_line(), flush=True)
        while not stopping.wait(0.5):
            if stack.process.poll() is not None:
                print(f"error: ministack exited with {stack.process.returncode}", file=sys.stderr)
                return 1
        return 0
    finally:
        stack.stop()
        print("stopped; ministack and its files removed", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
