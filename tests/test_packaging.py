"""Installing pdeforge must not shadow the PyPI ``datasets`` package: the wheel ships no top-level packages."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_wheel_installs_dependencies_only(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(tmp_path.glob("pdeforge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("datasets/", "operators/"))], names
    metadata = next(n for n in names if n.endswith("METADATA"))
    requires = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Dist: torch" in requires and "Requires-Dist: pytorch-lightning" in requires


def test_our_datasets_package_is_the_repository_one() -> None:
    import datasets

    assert Path(datasets.__file__).resolve().parent == ROOT / "datasets"
