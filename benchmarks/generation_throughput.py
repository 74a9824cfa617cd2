"""Data-generation throughput (samples/s) of pdeforge's PDE generators: burgers, darcy, navier_stokes.

Each generator solves ``--batches`` batches of ``--batch-size`` samples (after one untimed warm-up batch that
also builds caches) through the same ``PDEProblem.generate`` call the data pipeline uses, and the script
prints one table row per generator.

Presets (``--preset``):

``small``  (default) sizes that finish in about a minute on a 2-core CPU: Burgers 1024 -> 256 points,
           Darcy 85 -> 43, Navier-Stokes 64 -> 32 to t = 2 (dt = 1e-3).
``paper``  the FNO paper's settings: Burgers 8192 -> 1024 (t = 1), Darcy 421 -> 85, Navier-Stokes 256 -> 64 to
           t = 50 (nu = 1e-3, dt = 1e-3) -- meant for a GPU (``--device cuda``); use ``--set navier_stokes.t_final=1``
           to time a short horizon and scale (cost is linear in t_final).

``--batch-size auto`` solves as many samples together as the data pipeline's ``chunk_size: auto`` would
(:func:`datasets.generation.auto_chunk_size`: from the free memory and the problem's per-sample estimate, capped
at 64 on CPU and by the 1000-sample paper set).

Navier-Stokes memory-traffic bound. After the table, every Navier-Stokes row gets the arithmetic of its bound
(:func:`datasets.pdes.navier_stokes.step_traffic`): FFTs and elementwise passes per step and the bytes they
read and write per sample (each array read and written once: a lower bound), the steps of the trajectory, the
bytes per sample, and the time bound ``bytes / bandwidth`` with the bandwidth measured here (the best of several
copies of a ``--bandwidth-mib`` tensor on the device, read + write bytes / time) and, on CUDA, the nominal
bandwidth of the device (H100 SXM 3.35 TB/s, H200 4.8 TB/s, ...). It prints measured / bound and the time of the
1000-sample paper set (256^2 -> 64, t = 50, at the measured precision) at the measured rate per byte and at the
bound.

Usage::

    python benchmarks/generation_throughput.py [--threads 1]
    python benchmarks/generation_throughput.py --preset paper --device cuda --batch-size 32
    python benchmarks/generation_throughput.py --preset paper --device cuda --batch-size auto \
        --pde navier_stokes --set navier_stokes.precision=float32 --set navier_stokes.t_final=2
    python benchmarks/generation_throughput.py --pde darcy --set darcy.solver=cg --set darcy.resolution=141
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.generation import auto_chunk_size  # noqa: E402
from datasets.pdes import make_problem  # noqa: E402
from datasets.pdes.base import resolve_device  # noqa: E402
from datasets.pdes.navier_stokes import solver_steps, step_traffic  # noqa: E402

#: samples of the FNO paper's Navier-Stokes training set (the projection in the bound lines)
PAPER_SET = 1000
#: nominal memory bandwidth (bytes/s) by a substring of the CUDA device name, first match wins
NOMINAL_BANDWIDTH = [("H200", 4.8e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12), ("A100-SXM4-80GB", 2.039e12),
                     ("A100", 1.555e12), ("L40S", 0.864e12), ("A10", 0.6e12), ("V100", 0.9e12)]

PRESETS: dict[str, dict[str, dict]] = {
    "small": {
        "burgers": dict(solver_resolution=1024, resolution=256),
        "darcy": dict(solver_resolution=85, resolution=43),
        "navier_stokes": dict(solver_resolution=64, resolution=32, t_final=2.0, dt=1e-3),
    },
    "paper": {
        "burgers": dict(solver_resolution=8192, resolution=1024),
        "darcy": dict(solver_resolution=421, resolution=85),
        "navier_stokes": dict(solver_resolution=256, resolution=64, t_final=50.0, dt=1e-3),
    },
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """``["PDE.PARAM=VALUE", ...]`` as ``{PDE: {PARAM: value}}`` (values read as Python literals where they parse);
    a one-line ``ValueError`` for an item of another form."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = item.partition("=")
        pde, dot, param = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set {item!r} is not allowed; use PDE.PARAM=VALUE, e.g. navier_stokes.t_final=2")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault(pde, {})[param] = parsed
    return out


def describe(pde: str, problem) -> str:
    p = problem.params
    if pde == "burgers":
        return f"{p['solver_resolution']}->{p['resolution']} t={p['t_final']:g} dt={p['dt']:g}"
    if pde == "darcy":
        return f"{p['solver_resolution']}->{p['resolution']} {p['solver']}"
    return f"{p['solver_resolution']}->{p['resolution']} t={p['t_final']:g} dt={p['dt']:g} {p['precision']}"


def measure_bandwidth(device: torch.device, mib: int, repeats: int = 5) -> float:
    """Memory bandwidth of ``device`` in bytes/s: the best of ``repeats`` copies of a ``mib``-MiB float32
    tensor, counting the bytes read and written."""
    src = torch.ones(mib * 2**20 // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up (first touch of the pages, CUDA context)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.numel() * src.element_size() / best


def nominal_bandwidth(device: torch.device) -> tuple[str, float] | None:
    """``(device name, bytes/s)`` of the spec sheet for a known CUDA device, else ``None``."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in NOMINAL_BANDWIDTH:
        if key in name:
            return name, value
    return None


def ns_traffic(problem, batch_size: int) -> dict:
    """Per-sample bytes of a Navier-Stokes setting: ``step`` (see ``step_traffic``), ``steps`` and ``bytes``."""
    dtype = problem.working_dtype()
    step = step_traffic(problem.solver_resolution, dtype, batch_size)
    steps = solver_steps(problem.times().tolist(), problem.dt)
    return {"step": step, "steps": steps, "bytes": step["bytes"] * steps, "dtype": str(dtype).replace("torch.", "")}


def bound_lines(problem, result: dict, bandwidth: float, nominal: tuple[str, float] | None) -> list[str]:
    """The arithmetic of the memory-traffic bound of a measured Navier-Stokes row, and the paper-set projection."""
    t = ns_traffic(problem, result["batch"])
    step, n = t["step"], problem.solver_resolution
    mb = 1e6
    s_per_sample = result["seconds"] / result["samples"]
    bound = t["bytes"] / bandwidth
    paper = make_problem("navier_stokes", device="cpu", **{**PRESETS["paper"]["navier_stokes"],
                                                          "precision": problem.precision})
    paper_bytes = ns_traffic(paper, max(result["batch"], 64))["bytes"]
    lines = [
        (f"navier_stokes bound ({n}^2, {t['dtype']}, batch {result['batch']}; C = n (n/2+1) complex = "
         f"{step['C'] / mb:.4f} MB, R = n^2 real = {step['R'] / mb:.4f} MB): per step {step['ffts']} FFTs "
         f"(2 x [4 batched inverse + 1 forward], 10 C + 10 R) moving {step['fft_bytes'] / mb:.3f} MB/sample + "
         f"{step['passes']} elementwise passes ({(step['elementwise_bytes'] - 14 * step['R']) / step['C']:.0f} C + "
         f"14 R) moving {step['elementwise_bytes'] / mb:.3f} MB/sample "
         f"+ shared tables {step['table_bytes'] / mb:.3f} MB/sample = {step['bytes'] / mb:.3f} MB/sample/step "
         f"(each array read + written once)"),
        (f"navier_stokes bound: {t['steps']} steps x {step['bytes'] / mb:.3f} MB = {t['bytes'] / 1e9:.3f} "
         f"GB/sample; measured bandwidth {bandwidth / 1e9:.1f} GB/s (copy, read + write) -> bound {bound:.4g} "
         f"s/sample; measured {s_per_sample:.4g} s/sample = {s_per_sample / bound:.2f} x the bound"),
    ]
    if nominal is not None:
        name, value = nominal
        lines.append(f"navier_stokes bound at the nominal {value / 1e12:.2f} TB/s of {name}: "
                     f"{t['bytes'] / value:.4g} s/sample; measured / bound = {s_per_sample * value / t['bytes']:.2f}")
    rate = s_per_sample / t["bytes"]  # seconds per byte of traffic, as measured
    lines.append(f"navier_stokes paper set ({PAPER_SET} x 256^2 -> 64, t = 50, {t['dtype']}, "
                 f"{paper_bytes / 1e9:.1f} GB/sample): {PAPER_SET * paper_bytes * rate / 60:.2f} min at the measured "
                 f"rate per byte, {PAPER_SET * paper_bytes / bandwidth / 60:.2f} min at the measured-bandwidth bound"
                 + ("" if nominal is None else f", {PAPER_SET * paper_bytes / nominal[1] / 60:.2f} min at the "
                    "nominal bound"))
    return lines


def batch_for(pde: str, params: dict, device: torch.device, batch_size: int | str) -> int:
    """``batch_size``, or for ``auto`` what ``chunk_size: auto`` would solve together (of ``PAPER_SET``)."""
    if batch_size != "auto":
        return int(batch_size)
    return auto_chunk_size(make_problem(pde, device=device, **params), PAPER_SET)


def measure(pde: str, params: dict, device: torch.device, batch_size: int, batches: int) -> dict:
    problem = make_problem(pde, device=device, **params)
    problem.generate(seed=0, split="train", indices=range(batch_size))  # warm-up (caches, CUDA init, plans)
    _sync(device)
    t0 = time.perf_counter()
    for b in range(batches):
        start = (b + 1) * batch_size
        problem.generate(seed=0, split="train", indices=range(start, start + batch_size))
    _sync(device)
    seconds = time.perf_counter() - t0
    n = batches * batch_size
    return {"setting": describe(pde, problem), "samples": n, "seconds": seconds, "rate": n / seconds,
            "batch": batch_size, "problem": problem}


def _batch_size(value: str) -> int | str:
    if value.strip().lower() == "auto":
        return "auto"
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size <= 0:
        raise argparse.ArgumentTypeError(f"--batch-size {value!r}: use a positive integer or auto")
    return size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="small")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--pde", nargs="+", default=list(PRESETS["small"]), choices=list(PRESETS["small"]))
    parser.add_argument("--batch-size", type=_batch_size, default=4,
                        help="samples solved together, or auto (as chunk_size: auto: from the free memory)")
    parser.add_argument("--bandwidth-mib", type=int, default=None,
                        help="size of the tensor copied to measure the memory bandwidth (default 1024 on CUDA, "
                             "256 on CPU)")
    parser.add_argument("--batches", type=int, default=2, help="timed batches per generator")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op CPU threads (default: torch's choice; 1 is often fastest for small "
                             "grids and on a shared machine)")
    parser.add_argument("--set", action="append", default=[], metavar="PDE.PARAM=VALUE",
                        help="override a generator parameter (repeatable)")
    args = parser.parse_args(argv)
    if args.batches <= 0:
        raise SystemExit("--batches must be positive")
    if args.bandwidth_mib is not None and args.bandwidth_mib <= 0:
        raise SystemExit("--bandwidth-mib must be positive")
    if args.threads is not None:
        if args.threads <= 0:
            raise SystemExit("--threads must be positive")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    try:
        overrides = parse_overrides(args.set)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    unknown = set(overrides) - set(PRESETS[args.preset])
    if unknown:
        raise SystemExit(f"--set names unknown generator(s) {sorted(unknown)}; use {list(PRESETS[args.preset])}")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"preset={args.preset} device={device} [{name}] torch={torch.__version__} "
          f"batch={args.batch_size} timed batches={args.batches}")
    header = f"{'generator':<15}{'setting':<38}{'samples':>8}{'time (s)':>10}{'samples/s':>11}{'s/sample':>10}"
    print(header)
    print("-" * len(header))
    bounds: list[str] = []
    for pde in args.pde:
        params = {**PRESETS[args.preset][pde], **overrides.get(pde, {})}
        batch = batch_for(pde, params, device, args.batch_size)
        r = measure(pde, params, device, batch, args.batches)
        print(f"{pde:<15}{r['setting']:<38}{r['samples']:>8}{r['seconds']:>10.2f}{r['rate']:>11.3f}"
              f"{1 / r['rate']:>10.3f}" + ("" if args.batch_size != "auto" else f"  (auto batch {batch})"),
              flush=True)
        if pde == "navier_stokes":
            mib = args.bandwidth_mib or (1024 if device.type == "cuda" else 256)
            bounds += bound_lines(r["problem"], r, measure_bandwidth(device, mib), nominal_bandwidth(device))
    for line in bounds:
        print(line, flush=True)


if __name__ == "__main__":
    main()
