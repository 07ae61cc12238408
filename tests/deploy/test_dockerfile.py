"""The Dockerfile: lint, image shape, and a replay of its build steps without Docker."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .dockerfile import Stage, env_pairs, parse
from .paths import REPO_ROOT, venv_tool

DOCKERFILE = REPO_ROOT / "Dockerfile"

# pip downloads the dependencies from the package index; generous, not a performance bound.
INSTALL_TIMEOUT_S = 540


def _stages() -> tuple[dict[str, str], Stage, Stage]:
    global_args, stages = parse(DOCKERFILE)
    build = next(s for s in stages if s.name == "build")
    return global_args, build, stages[-1]


def _under(root: Path, path: str) -> Path:
    """Map an absolute image path to the same path below root."""
    return root / path.lstrip("/")


def _replay_build_stage(build: Stage, root: Path) -> dict[str, str]:
    """Run the build stage's ENV, WORKDIR, COPY and RUN steps with / mapped to root."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    image_env: dict[str, str] = {}
    workdir = root

    for step in build.instructions:
        if step.keyword == "ENV":
            for key, value in env_pairs(step).items():
                image_env[key] = value
                env[key] = str(_under(root, value)) if value.startswith("/") else value
        elif step.keyword == "WORKDIR":
            workdir = _under(root, step.arguments)
            workdir.mkdir(parents=True, exist_ok=True)
        elif step.keyword == "COPY":
            *sources, destination = step.arguments.split()
            for source in sources:
                _copy(REPO_ROOT / source, workdir / destination)
        elif step.keyword == "RUN":
            subprocess.run(
                ["/bin/sh", "-c", step.arguments],
                cwd=workdir,
                env=env,
                check=True,
                timeout=INSTALL_TIMEOUT_S,
            )
        else:
            pytest.fail(f"the replay does not know the build step {step.keyword}")
    return image_env


def _copy(source: Path, destination: Path) -> None:
    if source.is_dir():
        shutil.copytree(
            source,
            destination,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        return

    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination / source.name)


def test_dockerfile_passes_hadolint() -> None:
    """hadolint reports nothing at any severity."""
    hadolint = venv_tool("hadolint")

    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_base_is_a_pinned_slim_python() -> None:
    """Both stages start from one slim Python image pinned to a patch release."""
    global_args, build, runtime = _stages()

    image = global_args["PYTHON_IMAGE"]

    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image)
    assert build.base == runtime.base == "${PYTHON_IMAGE}"


def test_dockerfile_runtime_runs_as_numeric_non_root_user() -> None:
    """The final stage switches to a numeric user and group other than root."""
    _, _, runtime = _stages()

    (user,) = runtime.of("USER")

    match = re.fullmatch(r"(\d+):(\d+)", user.arguments)
    assert match is not None
    assert int(match.group(1)) != 0
    assert int(match.group(2)) != 0


def test_dockerfile_runtime_exposes_otlp_ports_and_serves() -> None:
    """The image exposes 4317 and 4318 and starts `falco-risk serve` in exec form."""
    _, _, runtime = _stages()

    (expose,) = runtime.of("EXPOSE")
    (entrypoint,) = runtime.of("ENTRYPOINT")
    (healthcheck,) = runtime.of("HEALTHCHECK")

    assert set(expose.arguments.split()) == {"4317", "4318"}
    assert json.loads(entrypoint.arguments) == ["falco-risk", "serve"]
    exec_form = healthcheck.arguments.split(" CMD ", 1)[1]
    assert "/healthz" in " ".join(json.loads(exec_form))


def test_dockerfile_runtime_copies_the_built_environment_and_installs_nothing() -> None:
    """The final stage takes the build stage's virtual environment and runs no installer."""
    _, build, runtime = _stages()
    venv = next(env_pairs(e)["VENV"] for e in build.of("ENV") if "VENV" in env_pairs(e))

    copies = [c.arguments.split() for c in runtime.of("COPY")]
    commands = " ".join(r.arguments for r in runtime.of("RUN"))

    assert ["--from=build", venv, venv] in copies
    assert "pip install" not in commands
    assert "apt-get install" not in commands


@pytest.mark.timeout(2 * INSTALL_TIMEOUT_S)
def test_dockerfile_build_steps_produce_a_working_cli(tmp_path: Path) -> None:
    """Replaying the build stage into a fresh directory yields a runnable falco-risk."""
    _, build, _ = _stages()

    image_env = _replay_build_stage(build, tmp_path)
    venv = _under(tmp_path, image_env["VENV"])
    result = subprocess.run(
        [str(venv / "bin" / "falco-risk"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    assert not (venv / "bin" / "pip").exists()
