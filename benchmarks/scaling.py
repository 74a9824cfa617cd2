"""Scaling of pdeforge's networks and data generators with the grid size: training-step time and peak memory vs
resolution per model (FNO, MgNO, LSM, SFNO), and generation time per sample vs solver grid per PDE.

Models are built from their paper-setting experiment configs (Hydra compose of ``conf/train.yaml`` with
``experiment=fno_darcy | mgno_darcy | lsm_darcy | sfno_ns``, channels resolved from the data config), so widths,
modes, levels and patches are the papers'. SFNO is spatio-temporal: its input is the paper's 10 vorticity
snapshots, its output the next 40 (``(B, 10, S, S) -> (B, 40, S, S)``, time-major channels); the Darcy models
map ``(B, 1, S, S) -> (B, 1, S, S)``. Inputs and targets are random (the cost does not depend on the values).

One training step = forward + backward + Adam step with :class:`operators.losses.RelativeL2Loss` (for every model,
also those whose paper loss is H1 / Bochner: the loss is a negligible part of the step). Every (model,
resolution) point runs in a fresh Python process (``python -c``), so memory figures do not carry over:

* step time: median of ``--steps`` timed steps after ``--warmup`` untimed ones (fewer timed steps when one step
  takes longer than ``--time-budget``; the note says so).
* peak memory: on CUDA the **peak CUDA allocated** bytes (``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``; includes the parameters and the batch); on CPU the **peak RSS growth** of the
  steps: ``ru_maxrss`` after the steps minus the resident set just before the first step (gradients, Adam
  state, activations, FFT / conv work space; the parameters and the batch are already resident).

A point that cannot run (grid too small for the modes, out of memory, ``--max-memory-gb`` exceeded, timed out)
gets a ``-`` and the reason. Once a step takes longer than ``--time-budget`` seconds (or runs out of memory) the
model's larger resolutions are skipped, which keeps a CPU run finite.

Generation: ``datasets.pdes.make_problem(pde, **params).generate(seed=0, split="train", indices=...)`` (the
pipeline's call, as ``benchmarks/generation_throughput.py``) after a one-sample warm-up (caches, plans); the time
per sample of ``--gen-samples`` samples solved together, the data loaded at the solver grid. Navier-Stokes runs
to a short horizon ``t_final`` (``--set navier_stokes.t_final=...``, default 1; the paper's is 50) and the table
also gives the time per sample per unit of simulated time (the cost is linear in ``t_final``).

Outputs (``--out-dir``, default ``benchmarks/results``): ``scaling_<device>.md`` (the tables, also printed),
``scaling_<device>.csv`` and ``scaling_<device>.png`` (step time, peak memory, generation time; log-log).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/scaling.py --threads 1 --time-budget 30
    python benchmarks/scaling.py --device cuda --batch-size 4
    python benchmarks/scaling.py --models fno sfno --resolutions 64 128 --skip-generation
    python benchmarks/scaling.py --skip-models --pdes darcy --grids darcy=65,141,211
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.generation_throughput import parse_overrides  # noqa: E402

#: model name -> its paper-setting experiment config
MODELS: dict[str, str] = {"fno": "fno_darcy", "mgno": "mgno_darcy", "lsm": "lsm_darcy", "sfno": "sfno_ns"}
DEFAULT_RESOLUTIONS = (64, 128, 256, 512, 1024)


def _same_grid(n: int) -> dict:
    return {"solver_resolution": n, "resolution": n}


#: PDE -> solver grids (points per side), parameters for a grid, fixed parameters, whether it is time dependent.
#: The data are loaded at the solver grid (every grid is valid; loading costs nothing next to the solve).
GENERATION: dict[str, dict] = {
    "burgers": {"grids": (1024, 2048, 4096, 8192), "grid": _same_grid, "params": {}, "unsteady": True},
    "darcy": {"grids": (65, 85, 141, 211, 421), "grid": _same_grid, "params": {}, "unsteady": False},
    "navier_stokes": {"grids": (64, 128, 256), "grid": _same_grid,
                      "params": {"t_final": 1.0, "record_every": 1.0, "dt": 1e-3}, "unsteady": True},
    "combined_equation": {"grids": (100, 200, 400, 800), "grid": _same_grid, "params": {}, "unsteady": True},
    "wave": {"grids": (50, 100, 200, 400), "grid": lambda n: {"resolution": n}, "params": {}, "unsteady": True},
}
DEFAULT_PDES = ("burgers", "darcy", "navier_stokes")
RESULT_TAG = "SCALING_RESULT "


# ------------------------------------------------------------------------------------------------ models
def model_spec(name: str) -> dict:
    """The resolved network config of model ``name``'s experiment and its tensor channels:
    ``{"model", "experiment", "config" (dict for hydra.utils.instantiate), "in_channels", "out_channels"}``."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is not allowed; use one of {', '.join(MODELS)}")
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from operators.runtime import resolvers  # noqa: F401  (registers ${repeat:...}, ${if_else:...})

    experiment = MODELS[name]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}", "paths.output_dir=/tmp/unused"])
    data = cfg.data
    # time-major channels: in = T_in * C (data.in_channels), out = T_out * C
    return {"model": name, "experiment": experiment, "config": OmegaConf.to_container(cfg.model, resolve=True),
            "in_channels": int(data.in_channels), "out_channels": int(data.out_channels * data.n_target_steps)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_bytes() -> int | None:
    """Current resident set size (Linux ``/proc/self/statm``), or None where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate" in text \
        or "cannot allocate" in text


def measure_point(job: dict) -> dict:
    """One training-step measurement in this process (meant to be a fresh one, see :func:`run_point`).

    ``job``: ``spec`` (:func:`model_spec`), ``resolution``, ``batch_size``, ``steps``, ``warmup``, ``device``,
    ``threads``, ``time_budget``, ``max_memory_gb``. Returns ``{"ok": True, "step_s", "step_times", "memory_bytes",
    "memory_kind", "params", "timed_steps", "note"}`` or ``{"ok": False, "reason", "oom"}``.
    """
    from hydra.utils import instantiate

    from operators.losses import RelativeL2Loss

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    device = torch.device(job["device"])
    spec, s, b = job["spec"], int(job["resolution"]), int(job["batch_size"])
    if device.type == "cpu" and job.get("max_memory_gb"):
        # cap the address space growth: an allocation past it raises instead of waking the OOM killer
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        limit = vm + int(job["max_memory_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    torch.manual_seed(0)
    try:
        model = instantiate(spec["config"]).to(device)
        params = sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters())
        x = torch.randn(b, spec["in_channels"], s, s, device=device)
        y = torch.randn(b, spec["out_channels"], s, s, device=device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = RelativeL2Loss()
        model.train()

        def step() -> float:
            t0 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            _sync(device)
            return time.perf_counter() - t0

        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rss0 = _rss_bytes()
        maxrss0 = _maxrss_bytes()
        budget = float(job["time_budget"])
        warm, note = [], ""
        for _ in range(int(job["warmup"])):
            warm.append(step())
            if warm[-1] > budget:
                break
        if warm[-1] > budget:  # too slow to repeat: the (warm-up) step is the figure
            times = [warm[-1]]
            note = f"one step only (> {budget:g} s budget)"
        else:
            n = max(1, min(int(job["steps"]), int(budget // warm[-1])))
            times = [step() for _ in range(n)]
            if n < int(job["steps"]):
                note = f"{n} of {job['steps']} timed steps (budget {budget:g} s)"
        if device.type == "cuda":
            memory, kind = torch.cuda.max_memory_allocated(device), "peak CUDA allocated"
        else:
            base = rss0 if rss0 is not None else maxrss0
            memory, kind = _maxrss_bytes() - base, "peak RSS growth"
        return {"ok": True, "step_s": statistics.median(times), "step_times": times, "memory_bytes": int(memory),
                "memory_kind": kind, "params": int(params), "timed_steps": len(times), "note": note}
    except Exception as exc:  # noqa: BLE001  (a point that cannot run is a row with a reason, not a crash)
        oom = _is_oom(exc)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        reason = "out of memory" if oom else f"{type(exc).__name__}: {first}"
        if oom and job.get("max_memory_gb") and device.type == "cpu":
            reason = f"out of memory (> --max-memory-gb {job['max_memory_gb']:g})"
        return {"ok": False, "reason": reason[:160], "oom": oom}


def _child_main() -> None:
    """Entry of the measurement subprocess: job JSON in ``argv[1]``, result JSON on one tagged stdout line."""
    job = json.loads(sys.argv[1])
    print(RESULT_TAG + json.dumps(measure_point(job)), flush=True)


def run_point(job: dict, timeout: float) -> dict:
    """:func:`measure_point` in a fresh Python process (clean peak-memory figures); a crash, kill or timeout
    becomes ``{"ok": False, "reason"}``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    if job.get("threads"):
        env["OMP_NUM_THREADS"] = str(job["threads"])
    code = "import benchmarks.scaling as s; s._child_main()"
    try:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(job)], cwd=ROOT, env=env, check=False,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"ok": False, "reason": f"timed out after {timeout:.0f} s", "oom": False, "slow": True}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    if proc.returncode < 0:
        sig = -proc.returncode
        reason = f"killed by signal {sig}" + (" (out of memory?)" if sig == 9 else "")
        return {"ok": False, "reason": reason, "oom": sig == 9}
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "reason": f"exit {proc.returncode}: {tail}"[:160], "oom": False}


def benchmark_models(args: argparse.Namespace, device: torch.device, log=print) -> list[dict]:
    rows = []
    for name in args.models:
        spec = model_spec(name)
        skip = None
        for res in args.resolutions:
            row = {"model": name, "experiment": spec["experiment"], "resolution": res, "batch": args.batch_size}
            if skip:
                rows.append({**row, "ok": False, "reason": skip})
                log(_model_line(rows[-1]))
                continue
            job = {"spec": spec, "resolution": res, "batch_size": args.batch_size, "steps": args.steps,
                   "warmup": args.warmup, "device": str(device), "threads": args.threads,
                   "time_budget": args.time_budget, "max_memory_gb": args.max_memory_gb}
            result = run_point(job, timeout=args.point_timeout)
            rows.append({**row, **result})
            if result["ok"] and result["step_s"] > args.time_budget:
                skip = f"skipped: a step at {res} took {result['step_s']:.0f} s > --time-budget {args.time_budget:g}"
            elif not result["ok"] and (result.get("oom") or result.get("slow")):
                skip = f"skipped: {result['reason']} at {res}"
            log(_model_line(rows[-1]))
    return rows


# ------------------------------------------------------------------------------------------------ generation
def _parse_grids(items: list[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for item in items:
        pde, sep, values = item.partition("=")
        try:
            grids = [int(v) for v in values.split(",") if v.strip()]
        except ValueError:
            grids = []
        if not sep or not grids or min(grids) <= 0:
            raise ValueError(f"--grids {item!r} is not allowed; use PDE=N1,N2,... with positive integers")
        out[pde] = grids
    return out


def benchmark_generation(args: argparse.Namespace, device: torch.device, log=print) -> list[dict]:
    from datasets.pdes import make_problem

    overrides, grids = parse_overrides(args.set), _parse_grids(args.grids)
    unknown = (set(overrides) | set(grids)) - set(args.pdes)
    if unknown:
        raise ValueError(f"--set/--grids name PDE(s) {sorted(unknown)} not in --pdes {args.pdes}")
    rows = []
    for pde in args.pdes:
        gen = GENERATION[pde]
        skip = None
        for n in grids.get(pde, gen["grids"]):
            params = {**gen["params"], **gen["grid"](n), **overrides.get(pde, {})}
            row = {"pde": pde, "grid": n, "samples": args.gen_samples, "unsteady": gen["unsteady"]}
            if skip:
                rows.append({**row, "ok": False, "reason": skip})
                log(_gen_line(rows[-1]))
                continue
            try:
                problem = make_problem(pde, device=device, **params)
                problem.generate(seed=0, split="train", indices=[0])  # warm-up: caches, plans, CUDA init
                _sync(device)
                t0 = time.perf_counter()
                problem.generate(seed=0, split="train", indices=range(1, 1 + args.gen_samples))
                _sync(device)
                per_sample = (time.perf_counter() - t0) / args.gen_samples
                t_final = problem.params.get("t_final") if gen["unsteady"] else None
                rows.append({**row, "ok": True, "s_per_sample": per_sample, "t_final": t_final,
                             "setting": _setting(problem.params)})
                if per_sample > args.time_budget:
                    skip = f"skipped: {per_sample:.0f} s/sample at {n} > --time-budget {args.time_budget:g}"
            except Exception as exc:  # noqa: BLE001  (a row with the reason, as for the models)
                first = (str(exc).strip().splitlines() or [""])[0]
                reason = "out of memory" if _is_oom(exc) else f"{type(exc).__name__}: {first}"
                rows.append({**row, "ok": False, "reason": reason[:160]})
            log(_gen_line(rows[-1]))
    return rows


def _setting(p: dict) -> str:
    keys = ("t_final", "dt", "solver", "precision", "nu")
    return " ".join(f"{k}={p[k]:g}" if isinstance(p[k], float) else f"{k}={p[k]}" for k in keys if k in p)


# ------------------------------------------------------------------------------------------------ output
def _mib(nbytes: float) -> float:
    return nbytes / 2**20


def _model_line(r: dict) -> str:
    if r["ok"]:
        return (f"  {r['model']:<5} S={r['resolution']:<5} step {r['step_s']:9.3f} s   "
                f"memory {_mib(r['memory_bytes']):9.1f} MiB  {r.get('note', '')}")
    return f"  {r['model']:<5} S={r['resolution']:<5} -  {r['reason']}"


def _gen_line(r: dict) -> str:
    if r["ok"]:
        return f"  {r['pde']:<14} N={r['grid']:<5} {r['s_per_sample']:9.3f} s/sample  {r['setting']}"
    return f"  {r['pde']:<14} N={r['grid']:<5} -  {r['reason']}"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def markdown(model_rows: list[dict], gen_rows: list[dict], meta: dict) -> str:
    lines = [f"### Scaling: {meta['title']}", ""]
    if model_rows:
        kinds = sorted({r["memory_kind"] for r in model_rows if r["ok"]}) or [meta["memory_kind"]]
        lines += [(f"Training step (forward + backward + Adam, relative L2 loss, random data) of the paper-setting "
                   f"configs, batch {meta['batch_size']}: median of up to {meta['steps']} steps after "
                   f"{meta['warmup']} warm-up; memory = {' / '.join(kinds)} (one fresh process per point)."), "",
                  "| model | experiment | params | resolution | batch | step time (s) | peak memory (MiB) | note |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in model_rows:
            if r["ok"]:
                lines.append(f"| {r['model']} | {r['experiment']} | {r['params']:,} | {r['resolution']} | {r['batch']} "
                             f"| {_fmt(r['step_s'])} | {_fmt(_mib(r['memory_bytes']))} | {r.get('note', '')} |")
            else:
                lines.append(f"| {r['model']} | {r['experiment']} | - | {r['resolution']} | {r['batch']} | - | - "
                             f"| {r['reason']} |")
        lines.append("")
    if gen_rows:
        lines += [(f"Data generation: time per sample of {meta['gen_samples']} samples solved together after a "
                   "one-sample warm-up, loaded at the solver grid; time-dependent PDEs also per unit of simulated "
                   "time (the cost is linear in t_final; the FNO paper's Navier-Stokes runs to t = 50)."), "",
                  "| PDE | solver grid | setting | s / sample | s / sample / unit t | note |",
                  "|---|---:|---|---:|---:|---|"]
        for r in gen_rows:
            if r["ok"]:
                per_t = _fmt(r["s_per_sample"] / r["t_final"]) if r.get("t_final") else "-"
                lines.append(f"| {r['pde']} | {r['grid']} | {r['setting']} | {_fmt(r['s_per_sample'])} | {per_t} | |")
            else:
                lines.append(f"| {r['pde']} | {r['grid']} | - | - | - | {r['reason']} |")
        lines.append("")
    return "\n".join(lines)


CSV_FIELDS = ("section", "name", "experiment", "size", "batch", "time_s", "time_per_unit_t_s", "memory_mib",
              "memory_kind", "params", "setting", "status")


def write_csv(path: Path, model_rows: list[dict], gen_rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in model_rows:
            w.writerow({"section": "train_step", "name": r["model"], "experiment": r["experiment"],
                        "size": r["resolution"], "batch": r["batch"],
                        "time_s": f"{r['step_s']:.6g}" if r["ok"] else "",
                        "memory_mib": f"{_mib(r['memory_bytes']):.6g}" if r["ok"] else "",
                        "memory_kind": r.get("memory_kind", ""), "params": r.get("params", ""),
                        "status": r.get("note", "") if r["ok"] else r["reason"]})
        for r in gen_rows:
            per_t = r["s_per_sample"] / r["t_final"] if r["ok"] and r.get("t_final") else None
            w.writerow({"section": "generation", "name": r["pde"], "size": r["grid"], "batch": r["samples"],
                        "time_s": f"{r['s_per_sample']:.6g}" if r["ok"] else "",
                        "time_per_unit_t_s": f"{per_t:.6g}" if per_t else "", "setting": r.get("setting", ""),
                        "status": "" if r["ok"] else r["reason"]})


def _label(name: str, rows: list[dict], size_key: str) -> str:
    """Legend entry: the name, and the sizes that have no point (skipped / failed)."""
    missing = [str(r[size_key]) for r in rows if not r["ok"]]
    return name + (f" (no {', '.join(missing)})" if missing else "")


def plot(path: Path, model_rows: list[dict], gen_rows: list[dict], meta: dict) -> None:
    """Three log-log panels: step time and peak memory vs resolution per model, generation time per sample vs
    solver grid per PDE; ``meta["title"]`` as the figure title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for name in dict.fromkeys(r["model"] for r in model_rows):
        rows = [r for r in model_rows if r["model"] == name]
        pts = [r for r in rows if r["ok"]]
        if pts:
            xs = [r["resolution"] for r in pts]
            line, = axes[0].plot(xs, [r["step_s"] for r in pts], "o-", label=_label(name, rows, "resolution"))
            axes[1].plot(xs, [_mib(max(r["memory_bytes"], 1)) for r in pts], "o-", color=line.get_color(),
                         label=_label(name, rows, "resolution"))
    for pde in dict.fromkeys(r["pde"] for r in gen_rows):
        rows = [r for r in gen_rows if r["pde"] == pde]
        pts = [r for r in rows if r["ok"]]
        if pts:
            label = _label(pde + (f", t_final={pts[0]['t_final']:g}" if pts[0].get("t_final") else ""), rows, "grid")
            axes[2].plot([r["grid"] for r in pts], [r["s_per_sample"] for r in pts], "o-", label=label)
    titles = ("training step time", f"peak memory ({meta['memory_kind']})", "generation time per sample")
    xlabels = ("resolution S (S x S grid)", "resolution S (S x S grid)", "solver grid points per side")
    ylabels = ("seconds per step", "MiB", "seconds per sample")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for ax, title, xl, yl in zip(axes, titles, xlabels, ylabels):
        ax.set_title(title)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=2))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(plain)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(meta["title"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass  # no /proc/cpuinfo (not Linux): keep the platform module's name
    return f"CPU {name}"


# ------------------------------------------------------------------------------------------------ entry point
def _positive_ints(values: list[int], flag: str) -> list[int]:
    if not values or min(values) <= 0:
        raise ValueError(f"{flag}={values} is not allowed; use positive integers")
    return values


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns ``{"models": rows, "generation": rows, "files": {...}}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--resolutions", nargs="+", type=int, default=list(DEFAULT_RESOLUTIONS))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per point (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed training steps before them (>= 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads (default: torch's)")
    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="seconds: once a step (or a sample's generation) takes longer, skip larger sizes")
    parser.add_argument("--point-timeout", type=float, default=None,
                        help="seconds before a model point's process is killed (default 10 x budget + 120)")
    parser.add_argument("--max-memory-gb", type=float, default=8.0,
                        help="CPU: address-space growth allowed per model point (0 = no cap)")
    parser.add_argument("--pdes", nargs="+", default=list(DEFAULT_PDES), choices=list(GENERATION))
    parser.add_argument("--grids", action="append", default=[], metavar="PDE=N1,N2,...",
                        help="solver grids of a PDE (repeatable); defaults: "
                             + "; ".join(f"{k} {','.join(map(str, v['grids']))}" for k, v in GENERATION.items()))
    parser.add_argument("--set", action="append", default=[], metavar="PDE.PARAM=VALUE",
                        help="override a generator parameter (repeatable), e.g. navier_stokes.t_final=2")
    parser.add_argument("--gen-samples", type=int, default=2, help="timed samples per grid (solved together)")
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--skip-models", action="store_true")
    args = parser.parse_args(argv)

    _positive_ints(args.resolutions, "--resolutions")
    _positive_ints([args.batch_size], "--batch-size")
    _positive_ints([args.steps], "--steps")
    _positive_ints([args.gen_samples], "--gen-samples")
    _positive_ints([args.warmup], "--warmup")
    if args.time_budget <= 0 or (args.point_timeout is not None and args.point_timeout <= 0):
        raise ValueError("--time-budget and --point-timeout must be positive seconds")
    if args.max_memory_gb < 0:
        raise ValueError(f"--max-memory-gb={args.max_memory_gb} is not allowed; use 0 (no cap) or more")
    if args.threads is not None and args.threads <= 0:
        raise ValueError(f"--threads={args.threads} is not allowed; use a positive integer")
    if args.point_timeout is None:
        args.point_timeout = 10 * args.time_budget + 120

    from datasets.pdes.base import resolve_device

    device = resolve_device(args.device)
    previous_threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()  # the children use the same count
    memory_kind = "peak CUDA allocated" if device.type == "cuda" else "peak RSS growth"
    date = _dt.date.today().isoformat()
    title = (f"{_device_name(device)}, torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, "
             f"{date}")
    meta = {"title": title, "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
            "gen_samples": args.gen_samples, "memory_kind": memory_kind}
    print(f"scaling benchmark: {title}")
    print(f"device={device} memory={memory_kind} time budget={args.time_budget:g} s "
          f"steps={args.steps} warmup={args.warmup}", flush=True)
    try:
        model_rows = [] if args.skip_models else benchmark_models(args, device, log=lambda s: print(s, flush=True))
        gen_rows = [] if args.skip_generation else benchmark_generation(args, device,
                                                                        log=lambda s: print(s, flush=True))
    finally:
        torch.set_num_threads(previous_threads)

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = device.type
    files = {"md": out / f"scaling_{tag}.md", "csv": out / f"scaling_{tag}.csv", "png": out / f"scaling_{tag}.png"}
    text = markdown(model_rows, gen_rows, meta)
    files["md"].write_text(text)
    write_csv(files["csv"], model_rows, gen_rows)
    plot(files["png"], model_rows, gen_rows, meta)
    print()
    print(text)
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return {"models": model_rows, "generation": gen_rows, "files": files}


if __name__ == "__main__":
    try:
        main()
    except ValueError as exc:  # bad input: one line, exit status 2
        raise SystemExit(f"error: {exc}") from None
