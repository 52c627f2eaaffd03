"""B2: cold start, the import time of each Lambda entry module against ``import boto3`` alone.

Method: each sample is a fresh interpreter (``python -c``, this virtualenv's Python) that puts
``lambda_src`` first on ``sys.path`` and times the one ``import`` statement in-process with
``time.perf_counter`` (interpreter start-up is left out: it is the same for all). Samples of the
four imports are interleaved round-robin so that load on the machine hits them alike; each
figure is the median. ``PYTHONDONTWRITEBYTECODE`` is removed from the children's environment and
every import runs once unmeasured first, so the ``.pyc`` caches of boto3, botocore and the
``userstatus`` package are warm (the goal is judged on these). Lambda's runtime ships boto3
precompiled but our package without ``.pyc``; that case is measured too (a copy of
``lambda_src`` without ``__pycache__``, bytecode writing off), as is ``import boto3, asyncio``
(the entry modules' only extra package).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPOSITORY_ROOT, bench_main, ratio_text
from bench.report import BenchResult, Goal, Table
from userstatus_stack.functions import LAMBDA_SOURCE_DIR

BASELINE = "boto3"
EXTRA_BASELINE = "boto3, asyncio"
ENTRY_MODULES = (
    "userstatus.http_api",
    "userstatus.websocket_api",
    "userstatus.broadcast",
    "userstatus.fanout",
)
GOAL = 1.25

_TIMED_IMPORT = """
import sys, time
sys.path.insert(0, {source!r})
before = set(sys.modules)
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(elapsed)
print(" ".join(sorted({{m.split(".")[0] for m in set(sys.modules) - before}})))
"""


def _child_environment() -> dict[str, str]:
    drop = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    return {k: v for k, v in os.environ.items() if k not in drop}


def timed_import(module: str, source: Path, env: dict[str, str]) -> tuple[float, set[str]]:
    """Seconds one fresh interpreter takes to import ``module``; top-level packages it loads."""
    code = _TIMED_IMPORT.format(source=str(source), module=module)
    answer = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    seconds, packages = answer.stdout.splitlines()[:2]
    return float(seconds), set(packages.split())


def run(quick: bool) -> BenchResult:
    """Median import times of boto3 and each entry module, warm and Lambda-like caches."""
    samples = 2 if quick else 15
    warm_env = _child_environment()
    lambda_like_env = {**warm_env, "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-lambda-src-") as scratch:
        # A copy of lambda_src without __pycache__: userstatus compiled on every import, as
        # from Lambda's read-only /var/task; boto3's caches stay warm (precompiled in Lambda).
        uncompiled = Path(scratch) / "lambda_src"
        shutil.copytree(LAMBDA_SOURCE_DIR, uncompiled, ignore=shutil.ignore_patterns("__pycache__"))
        cases: list[tuple[str, str, Path, dict[str, str]]] = [
            (BASELINE, BASELINE, LAMBDA_SOURCE_DIR, warm_env),
        ]
        if not quick:
            cases.append((EXTRA_BASELINE, EXTRA_BASELINE, LAMBDA_SOURCE_DIR, warm_env))
        for module in ENTRY_MODULES:
            cases.append((module, module, LAMBDA_SOURCE_DIR, warm_env))
            if not quick:
                cases.append((f"{module} (uncompiled)", module, uncompiled, lambda_like_env))
        loaded: dict[str, set[str]] = {}
        for name, module, source, env in cases:
            _, loaded[name] = timed_import(module, source, env)
        times: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for _ in range(samples):
            for name, module, source, env in cases:
                times[name].append(timed_import(module, source, env)[0])

    baseline = statistics.median(times[BASELINE])
    result = BenchResult(
        key="b2",
        title="B2 cold start (import time)",
        method=(__doc__ or "").split("\n\n", 1)[1].strip(),
    )
    rows = []
    worst = worst_uncompiled = 0.0
    for name, module, source, _ in cases:
        median = statistics.median(times[name])
        ratio = median / baseline
        if module in ENTRY_MODULES:
            if source == LAMBDA_SOURCE_DIR:
                worst = max(worst, ratio)
            else:
                worst_uncompiled = max(worst_uncompiled, ratio)
        extra = sorted(loaded[name] - loaded[BASELINE] - {"userstatus"})
        label = f"`import {module}`"
        if source != LAMBDA_SOURCE_DIR:
            label += ", userstatus without .pyc"
        rows.append(
            [
                label,
                str(samples),
                f"{median * 1000:.0f}",
                f"{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f}",
                ratio_text(ratio),
                "-" if name == BASELINE else ", ".join(extra) or "none",
            ]
        )
    result.tables.append(
        Table(
            title="Import time, fresh interpreters (median of interleaved samples)",
            headers=[
                "import",
                "samples",
                "median ms",
                "range ms",
                "vs boto3",
                "top-level packages loaded beyond boto3's",
            ],
            rows=rows,
            note="'userstatus without .pyc': a copy of lambda_src with no __pycache__ and "
            "PYTHONDONTWRITEBYTECODE=1, so the package is compiled on every import as from "
            "Lambda's read-only code directory, while boto3's caches stay warm.",
        )
    )
    result.goals.append(
        Goal(
            "B2 slowest entry module import vs `import boto3` (warm .pyc)",
            f"<= {GOAL:g}x",
            ratio_text(worst),
            worst <= GOAL,
        )
    )
    if quick:
        return result
    result.notes.append(
        f"Lambda-like (userstatus without .pyc), slowest entry module: "
        f"{ratio_text(worst_uncompiled)} of `import boto3` "
        f"({'within' if worst_uncompiled <= GOAL else 'over'} the {GOAL:g}x goal; informational)."
    )
    return result


def main() -> None:
    """Run B2 and print its table."""
    bench_main(run, __doc__)


if __name__ == "__main__":
    main()
