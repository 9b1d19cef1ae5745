"""The install path: README's test command is `.ci/run`'s, and the lock pins what setup.cfg asks."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
LOCK = REPO / "requirements" / "lock.txt"
# A pin line and the hash lines that follow it, up to the next pin.
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)",
    re.MULTILINE,
)


def lock_pins() -> dict[str, tuple[Version, int]]:
    """name → (pinned version, number of hashes)."""
    return {
        canonicalize_name(name): (Version(version), hashes.count("--hash="))
        for name, version, hashes in PIN.findall(LOCK.read_text())
    }


def setup_requirements() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    lines += cfg["options.extras_require"]["dev"].splitlines()
    return [
        Requirement(line) for line in lines if line.strip() and not line.strip().startswith("#")
    ]


def test_readme_test_command_is_ci_run_line():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    marker = ci.index("# --- README test command (keep identical) ---")
    command = ci[marker + 1]
    assert f"```bash\n{command}\n```" in readme
    assert "-r requirements/lock.txt" in command


def test_every_pin_is_hashed_and_torch_is_the_cpu_wheel():
    pins = lock_pins()
    assert len(pins) >= 50
    assert all(hashes >= 1 for _, hashes in pins.values()), "pins without --hash"
    assert str(pins["torch"][0]) == "2.13.0+cpu"
    # a CUDA build would bring these in
    assert not [name for name in pins if name.startswith("nvidia-") or name == "triton"]


def test_lock_satisfies_setup_cfg():
    """Fails when setup.cfg's ranges change without a refreshed lock (docs/install.md)."""
    pins = lock_pins()
    for req in setup_requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in the lock"
        assert req.specifier.contains(pins[name][0], prereleases=True), (
            f"lock pins {req.name}=={pins[name][0]}, setup.cfg asks {req.specifier}"
        )
