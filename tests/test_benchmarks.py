"""The generation benchmark's Navier-Stokes memory-traffic bound: printed, positive, and consistent."""
from __future__ import annotations

import re

import pytest
import torch

from benchmarks import generation_throughput as bench
from datasets.pdes.navier_stokes import NavierStokes, solver_steps, step_traffic

TINY = ["--pde", "navier_stokes", "--threads", "1", "--batches", "1", "--bandwidth-mib", "8",
        "--set", "navier_stokes.solver_resolution=16", "--set", "navier_stokes.resolution=8",
        "--set", "navier_stokes.t_final=0.1", "--set", "navier_stokes.record_every=0.05",
        "--set", "navier_stokes.dt=0.01"]
NUMBER = r"([0-9.]+(?:e[-+]?[0-9]+)?)"


@pytest.mark.parametrize("batch", ["2", "auto"])
def test_bound_lines_are_printed_with_positive_numbers(batch: str, capsys: pytest.CaptureFixture) -> None:
    threads = torch.get_num_threads()
    try:
        bench.main([*TINY, "--batch-size", batch])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("navier_stokes  ")]
    assert len(rows) == 1 and float(rows[0].split("  (auto")[0].split()[-2]) > 0  # samples/s
    per_step = re.search(rf"= {NUMBER} MB/sample/step", out)
    bound = re.search(rf"(\d+) steps x .* -> bound {NUMBER} s/sample; measured {NUMBER} s/sample = {NUMBER} x "
                      "the bound", out)
    paper = re.search(rf"paper set \(1000 x 256\^2 -> 64, t = 50, float64, {NUMBER} GB/sample\): {NUMBER} min at "
                      rf"the measured rate per byte, {NUMBER} min at the measured-bandwidth bound", out)
    assert per_step and bound and paper, out
    assert int(bound.group(1)) == 10  # t = 0.1 in steps of 0.01
    values = [float(v) for v in (per_step.group(1), *bound.groups()[1:], *paper.groups())]
    assert all(v > 0 for v in values), values
    _, seconds_bound, seconds, ratio = [float(v) for v in bound.groups()]
    assert ratio == pytest.approx(seconds / seconds_bound, rel=0.02)
    if batch == "auto":
        assert "(auto batch 64)" in rows[0]  # the CPU cap (a tiny problem fits many times)


def test_step_traffic_arithmetic() -> None:
    """The per-step bytes of the bound: 10 FFTs (10 C + 10 R) and 10 passes (21 C + 14 R; float32: 11 passes,
    24 C + 14 R) plus shared tables."""
    n = 256
    t = step_traffic(n, torch.float64, batch=10**9)
    C, R = 16 * n * (n // 2 + 1), 8 * n * n
    assert (t["C"], t["R"]) == (C, R) and t["ffts"] == 10 and t["passes"] == 10
    assert t["bytes"] == pytest.approx(31 * C + 24 * R, rel=1e-6)
    t32 = step_traffic(n, torch.float32, batch=10**9)
    assert t32["passes"] == 11 and t32["bytes"] == pytest.approx((34 * C + 24 * R) / 2, rel=1e-6)
    p = NavierStokes()  # the paper setting: 50 intervals of 1000 steps
    assert solver_steps(p.times().tolist(), p.dt) == 50_000


def test_bad_batch_size_is_refused() -> None:
    with pytest.raises(SystemExit):
        bench.main([*TINY, "--batch-size", "0"])
