"""Training-step throughput of pdeforge's FNO vs neuraloperator's FNO on the same config.

One "step" = forward + backward + Adam update (relative L2 loss) on a random batch.
Both models are built to be architecturally identical (same modes, width, layers,
lifting = one pointwise linear, projection = 2-layer MLP with 128 hidden channels,
linear skip, no channel-MLP in the blocks, grid embedding, same symmetric domain
padding) and the script prints both parameter counts so that can be checked.

Note on modes: neuraloperator's ``n_modes`` counts *all* kept modes per dim (centred on
0, and ``n//2+1`` on the last, half-spectrum dim), ours counts the non-negative ones
per corner; ours ``m`` per dim corresponds to theirs ``(2m, ..., 2m, 2m-2)``.

neuraloperator is an optional dependency (``pip install neuraloperator``); without it
only our numbers are printed.

Every requested combination of ``--precision`` (``32``; ``bf16-mixed`` = ``torch.autocast`` bf16 for both
libraries) and ``--compile`` (``off``; ``on`` = ``torch.compile`` of both models) is measured in one run,
interleaved over ``--repeats`` rounds, and printed side by side with the ratios "ours/theirs (same mode)",
"ours bf16 / ours fp32" and "ours compiled / ours eager". A combination that fails (e.g. neuraloperator's
spectral layer rejecting bf16, or a compile error) is reported in one line; a failed bf16 run of
neuraloperator is replaced by its fp32 run (same compile mode) for the ratio.

Usage::

    python benchmarks/fno_throughput.py --device cpu                       # fp32 eager, darcy2d + burgers1d
    python benchmarks/fno_throughput.py --device cpu --threads 2 --precision 32 bf16-mixed --compile off on
    python benchmarks/fno_throughput.py --device cuda --precision 32 bf16-mixed --compile off on  # + fno2d_256
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from operators.fno import FNO  # noqa: E402
from operators.layers import SpectralConv  # noqa: E402
from operators.losses import RelativeL2Loss  # noqa: E402


@dataclass
class Config:
    name: str
    modes: int
    n_dim: int
    width: int
    n_layers: int
    resolution: int
    batch_size: int
    padding: float  # fraction per side (symmetric), 0 = periodic


CONFIGS = {
    # FNO paper, Darcy flow: modes 12, width 32, 4 layers, non-periodic -> padding
    "darcy2d": Config("darcy2d (2D)", modes=12, n_dim=2, width=32, n_layers=4, resolution=64, batch_size=20,
                      padding=0.1),
    # FNO paper, Burgers: modes 16, width 64, 4 layers, periodic
    "burgers1d": Config("burgers1d (1D)", modes=16, n_dim=1, width=64, n_layers=4, resolution=1024, batch_size=20,
                        padding=0.0),
    # the large 2D case: modes 12, width 32, 4 layers, 256^2, batch 32, periodic (no padding)
    "fno2d_256": Config("fno2d_256 (2D)", modes=12, n_dim=2, width=32, n_layers=4, resolution=256, batch_size=32,
                        padding=0.0),
}
# fno2d_256 takes minutes per round on a few CPU cores: run by default on GPUs only
CPU_DEFAULT_CONFIGS = ("darcy2d", "burgers1d")
PRECISIONS = ("32", "bf16-mixed")
COMPILE = ("off", "on")


def build_ours(cfg: Config, transform: str = "auto") -> torch.nn.Module:
    model = FNO(1, 1, modes=(cfg.modes,) * cfg.n_dim, width=cfg.width, n_layers=cfg.n_layers,
                projection_channels=128, padding=cfg.padding, padding_mode="symmetric", use_grid=True)
    for module in model.modules():
        if isinstance(module, SpectralConv):
            module.transform = transform
    return model


def build_theirs(cfg: Config) -> torch.nn.Module:
    from neuralop.models import FNO as NeuralopFNO

    n_modes = (2 * cfg.modes,) * (cfg.n_dim - 1) + (2 * cfg.modes - 2,)
    return NeuralopFNO(
        n_modes=n_modes, in_channels=1, out_channels=1, hidden_channels=cfg.width, n_layers=cfg.n_layers,
        lifting_channel_ratio=0, projection_channel_ratio=128 / cfg.width, positional_embedding="grid",
        use_channel_mlp=False, fno_skip="linear", domain_padding=cfg.padding if cfg.padding > 0 else None,
    )


def count_params(model: torch.nn.Module) -> int:
    """Real parameters; complex ones count twice (paper convention)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters() if p.requires_grad)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "bf16-mixed":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure(model: torch.nn.Module, cfg: Config, device: torch.device, steps: int, warmup: int,
            precision: str = "32") -> dict:
    """Steps/s of ``steps`` timed training steps after ``warmup`` untimed ones (``model`` may be compiled)."""
    torch.manual_seed(0)
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = RelativeL2Loss()
    shape = (cfg.batch_size, 1) + (cfg.resolution,) * cfg.n_dim
    x, y = torch.randn(shape, device=device), torch.randn(shape, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(precision, device):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    dt = time.perf_counter() - t0
    return {"steps_s": steps / dt, "samples_s": steps * cfg.batch_size / dt, "params": count_params(model)}


def _median(rounds: list[dict]) -> dict:
    ordered = sorted(rounds, key=lambda r: r["steps_s"])
    return ordered[len(ordered) // 2]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0][:160] if text else ''}"


def run_config(cfg: Config, args: argparse.Namespace, device: torch.device, have_neuralop: bool) -> None:
    """Measure and print every (library, precision, compile) combination of one config."""
    libs = {"pdeforge": build_ours(cfg, args.spectral_transform)}
    if have_neuralop:
        libs["neuralop"] = build_theirs(cfg)
    precisions = list(args.precision)
    if have_neuralop and "bf16-mixed" in precisions and "32" not in precisions:
        precisions.insert(0, "32")  # neuralop's fp32 stands in if its bf16 run fails
    variants = [(lib, prec, comp) for comp in args.compile for prec in precisions for lib in libs
                if lib == "neuralop" or prec in args.precision]
    compiled: dict[str, torch.nn.Module] = {}
    if "on" in args.compile:
        torch._dynamo.reset()  # fresh caches per config; fp32 and bf16 (autocast) graphs are separate compiles
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    rounds: dict[tuple, list[dict]] = {v: [] for v in variants}
    failed: dict[tuple, str] = {}
    for _ in range(max(1, args.repeats)):  # interleave to spread machine noise evenly
        for v in variants:
            lib, prec, comp = v
            if v in failed:
                continue
            try:
                if comp == "on" and lib not in compiled:
                    compiled[lib] = torch.compile(libs[lib], dynamic=False)
                model = compiled[lib] if comp == "on" else libs[lib]
                rounds[v].append(measure(model, cfg, device, args.steps, args.warmup, prec))
            except Exception as exc:  # a rejected dtype or a compile error: one line, not a traceback
                failed[v] = _one_line(exc)
                if comp == "on":
                    torch._dynamo.reset()
    results = {v: _median(rs) for v, rs in rounds.items() if rs and v not in failed}
    for v in variants:
        lib, prec, comp = v
        lead = f"{cfg.name:<16}{cfg.resolution:>6}{cfg.batch_size:>6} | {lib:<10}{prec:>11}{comp:>5}"
        if v in failed:
            print(f"{lead} | FAILED {failed[v]}")
        elif v in results:
            r = results[v]
            print(f"{lead}{r['params']:>11,}{r['steps_s']:>10.2f}{r['samples_s']:>11.1f}")
    pad = f"{'':<28} | "
    for comp in args.compile:
        for prec in args.precision:
            ours = results.get(("pdeforge", prec, comp))
            if ours is None or not have_neuralop:
                continue
            theirs, note = results.get(("neuralop", prec, comp)), ""
            if theirs is None and prec == "bf16-mixed":
                theirs, note = results.get(("neuralop", "32", comp)), " (neuralop bf16 failed: vs its fp32)"
            if theirs is None:
                continue
            same = "same" if ours["params"] == theirs["params"] else "DIFFERENT"
            print(f"{pad}ratio pdeforge/neuralop [{prec}, compile {comp}]: {ours['steps_s'] / theirs['steps_s']:.2f}x "
                  f"steps/s ({same} parameter count){note}")
    if "32" in args.precision and "bf16-mixed" in args.precision:
        for comp in args.compile:
            a, b = results.get(("pdeforge", "bf16-mixed", comp)), results.get(("pdeforge", "32", comp))
            if a and b:
                print(f"{pad}ratio pdeforge bf16-mixed / pdeforge fp32 [compile {comp}]: "
                      f"{a['steps_s'] / b['steps_s']:.2f}x")
    if "on" in args.compile and "off" in args.compile:
        for prec in args.precision:
            for lib in libs:
                a, b = results.get((lib, prec, "on")), results.get((lib, prec, "off"))
                if a and b:
                    print(f"{pad}ratio {lib} compiled / {lib} eager [{prec}]: {a['steps_s'] / b['steps_s']:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--resolution", type=int, default=None,
                        help="grid points per dim for every config (default: each config's own)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: each config's own)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps per model (and round)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds per model, interleaved over all combinations; the median is reported")
    parser.add_argument("--configs", nargs="+", default=None, choices=list(CONFIGS),
                        help=f"default: all on GPU, {' '.join(CPU_DEFAULT_CONFIGS)} on CPU")
    parser.add_argument("--precision", nargs="+", default=["32"], choices=PRECISIONS)
    parser.add_argument("--compile", nargs="+", default=["off"], choices=COMPILE)
    parser.add_argument("--spectral-transform", default="auto", choices=("auto", "dft", "fft"),
                        help="pdeforge SpectralConv transform (see operators.layers.SpectralConv)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.configs is None:
        args.configs = list(CPU_DEFAULT_CONFIGS) if device.type == "cpu" else list(CONFIGS)
    args.precision = list(dict.fromkeys(args.precision))
    args.compile = list(dict.fromkeys(args.compile))

    try:
        import neuralop  # noqa: F401

        have_neuralop = True
    except Exception as exc:  # ImportError or a broken install
        have_neuralop = False
        print(f"NOTE: neuraloperator is not importable ({exc.__class__.__name__}: {exc}); "
              "printing pdeforge numbers only. Install it with `pip install neuraloperator`.")

    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"steps={args.steps} warmup={args.warmup} repeats={args.repeats} (median) "
          f"spectral_transform={args.spectral_transform}")
    header = (f"{'config':<16}{'res':>6}{'batch':>6} | {'model':<10}{'precision':>11}{'comp':>5}"
              f"{'params':>11}{'steps/s':>10}{'samples/s':>11}")
    print(header)
    print("-" * len(header))
    for key in args.configs:
        base = CONFIGS[key]
        cfg = Config(**{**base.__dict__,
                        "resolution": args.resolution or base.resolution,
                        "batch_size": args.batch_size or base.batch_size})
        run_config(cfg, args, device, have_neuralop)


if __name__ == "__main__":
    main()
