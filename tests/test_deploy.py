"""The deployment files name what exists: every command the systemd units and the compose
services start is a real command of this version, the image installs through the one
script CI runs, and runs as a non-root user with the instance folder as its volume.
(.ci/run runs deploy/install.sh and `systemd-analyze verify` on the units.)"""

from __future__ import annotations

import configparser
import itertools
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.delivery import DIGEST

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
BIN = Path(DIGEST).parent


def _unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def _runs(argv: list[str], instance: Path) -> None:
    """The command exists in this version: its --help answers (nothing is started)."""
    program = BIN / Path(argv[0]).name
    assert program.exists(), f"{argv[0]} is not installed by this package"
    if program.name == "waitress-serve":
        module, _, name = argv[-1].partition(":")
        check = [str(BIN / "python"), "-c", f"import {module} as m; assert callable(m.{name})"]
    else:
        words = itertools.takewhile(lambda arg: not arg.startswith("-"), argv[1:])
        check = [str(program), *words, "--help"]
    env = {**os.environ, "DIGEST_INSTANCE_PATH": str(instance)}
    result = subprocess.run(check, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, (argv, result.stderr)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_starts_a_real_command_as_the_digest_user(unit: Path, tmp_path: Path) -> None:
    """Each unit runs an existing command, as `digest`, hardened, with time to finish a message."""
    service = _unit(unit)["Service"]
    _runs(shlex.split(service["ExecStart"]), tmp_path)
    assert service["User"] == "digest" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["ReadWritePaths"] == "/var/lib/digest"
    assert int(service["TimeoutStopSec"]) > 120, "SIGTERM waits for the SMTP reply (DIGEST_SMTP_TIMEOUT)"


@pytest.mark.parametrize("name", ["migrate", "web", "scheduler", "worker"])
def test_compose_service_starts_a_real_command(name: str, tmp_path: Path) -> None:
    """Each digest service in compose.yaml runs an existing command on the shared volume."""
    service = COMPOSE["services"][name]
    _runs(service["command"], tmp_path)
    assert "instance:/var/lib/digest" in service["volumes"]


def test_image_installs_through_the_ci_tested_script_and_runs_unprivileged() -> None:
    """The Dockerfile's only RUN is deploy/install.sh; it then runs as digest, not root,
    with DIGEST_INSTANCE_PATH as its volume."""
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    runs = [line for line in lines if line.startswith("RUN ")]
    assert runs == ["RUN sh /src/deploy/install.sh && rm -rf /src"]
    assert "USER digest" in lines
    assert 'VOLUME ["/var/lib/digest"]' in lines
    assert any("DIGEST_INSTANCE_PATH=/var/lib/digest" in line for line in lines)
    assert set(COMPOSE["services"]) == {"migrate", "web", "scheduler", "worker", "postgres", "redis"}
