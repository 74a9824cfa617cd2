"""benchmarks/scaling.py on tiny settings: a row per requested point (a '-' with the reason where a model cannot
run a grid), positive times and memory, the paper configs' parameter counts, the time-budget guard, and valid
markdown / CSV / PNG outputs."""
from __future__ import annotations

import csv
import struct

import pytest
import torch

from benchmarks import scaling

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow  # ~25 s: four fresh measurement processes (mostly importing torch)
def test_tiny_run_writes_table_csv_and_png(tmp_path, capsys):
    result = scaling.main(["--models", "fno", "mgno", "--resolutions", "16", "32", "--steps", "1", "--threads", "1",
                           "--pdes", "burgers", "--grids", "burgers=64,128", "--gen-samples", "1",
                           "--out-dir", str(tmp_path)])
    rows = {(r["model"], r["resolution"]): r for r in result["models"]}
    assert sorted(rows) == [("fno", 16), ("fno", 32), ("mgno", 16), ("mgno", 32)]
    # FNO's 12 modes do not fit a 16 x 16 grid: a row with the reason, not a crash; MgNO pads 16 up to 32
    assert not rows["fno", 16]["ok"] and "need a grid of at least" in rows["fno", 16]["reason"]
    for key in [("fno", 32), ("mgno", 16), ("mgno", 32)]:
        r = rows[key]
        assert r["ok"], r
        assert r["step_s"] > 0 and r["memory_bytes"] > 0
        assert r["memory_kind"] == "peak RSS growth"
        assert min(r["step_times"]) <= r["step_s"] <= max(r["step_times"])
    # built from the paper-setting experiment configs (conf/experiment/{fno,mgno}_darcy.yaml)
    assert rows["fno", 32]["params"] == 2_368_001
    assert rows["mgno", 32]["params"] == 572_662
    # gradients + two Adam moments of FNO's 2.37M float32 parameters alone are 27 MiB
    assert rows["fno", 32]["memory_bytes"] > 3 * 2_368_001 * 4

    gen = result["generation"]
    assert [(r["pde"], r["grid"]) for r in gen] == [("burgers", 64), ("burgers", 128)]
    assert all(r["ok"] and r["s_per_sample"] > 0 and r["t_final"] == 1.0 for r in gen)

    md = (tmp_path / "scaling_cpu.md").read_text()
    assert md in capsys.readouterr().out
    table = [line for line in md.splitlines() if line.startswith(("| fno ", "| mgno "))]
    assert len(table) == 4
    fno16 = next(line for line in table if line.startswith("| fno | fno_darcy | - | 16 |"))
    assert "need a grid of at least" in fno16
    for line in table:
        if line is fno16:
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[5]) > 0 and float(cells[6]) > 0  # step time (s), peak memory (MiB)
    assert sum(line.startswith("| burgers |") for line in md.splitlines()) == 2

    with open(tmp_path / "scaling_cpu.csv") as f:
        records = list(csv.DictReader(f))
    assert [(r["section"], r["name"], r["size"]) for r in records] == [
        ("train_step", "fno", "16"), ("train_step", "fno", "32"), ("train_step", "mgno", "16"),
        ("train_step", "mgno", "32"), ("generation", "burgers", "64"), ("generation", "burgers", "128")]
    assert records[0]["time_s"] == "" and "need a grid" in records[0]["status"]
    assert all(float(r["time_s"]) > 0 for r in records[1:])

    width, height = _png_size(tmp_path / "scaling_cpu.png")
    assert width > 800 and height > 300


def test_time_budget_skips_larger_sizes(tmp_path):
    result = scaling.main(["--models", "mgno", "--resolutions", "16", "32", "--steps", "3", "--threads", "1",
                           "--time-budget", "1e-6", "--pdes", "burgers", "--grids", "burgers=32,64",
                           "--gen-samples", "1", "--out-dir", str(tmp_path)])
    first, second = result["models"]
    assert first["ok"] and first["timed_steps"] == 1 and "one step only" in first["note"]
    assert not second["ok"] and second["reason"].startswith("skipped: a step at 16 took")
    g1, g2 = result["generation"]
    assert g1["ok"] and not g2["ok"] and g2["reason"].startswith("skipped:")
    assert "skipped: a step at 16" in (tmp_path / "scaling_cpu.md").read_text()
    _png_size(tmp_path / "scaling_cpu.png")


@pytest.mark.parametrize("argv, match", [
    (["--resolutions", "0"], "--resolutions"),
    (["--grids", "burgers=abc", "--skip-models"], "--grids"),
    (["--grids", "darcy=65", "--pdes", "burgers", "--skip-models"], "not in --pdes"),
    (["--set", "burgers", "--skip-models"], "--set"),
])
def test_bad_input_is_a_one_line_value_error(tmp_path, argv, match):
    with pytest.raises(ValueError, match=match):
        scaling.main([*argv, "--out-dir", str(tmp_path)])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_reports_peak_cuda_allocated(tmp_path):
    result = scaling.main(["--device", "cuda", "--models", "fno", "--resolutions", "32", "--steps", "2",
                           "--pdes", "darcy", "--grids", "darcy=33", "--gen-samples", "1", "--out-dir", str(tmp_path)])
    (r,) = result["models"]
    assert r["ok"] and r["memory_kind"] == "peak CUDA allocated"
    # the parameters, their gradients and the two Adam moments are all allocated on the device
    assert r["memory_bytes"] > 4 * r["params"] * 4
    assert result["generation"][0]["ok"]
    _png_size(tmp_path / "scaling_cuda.png")
