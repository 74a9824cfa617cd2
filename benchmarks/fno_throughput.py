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

Usage::

    python benchmarks/fno_throughput.py --device cpu --steps 10
    python benchmarks/fno_throughput.py --device cuda --resolution 128 --batch-size 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from operators.fno import FNO  # noqa: E402
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
}


def build_ours(cfg: Config) -> torch.nn.Module:
    return FNO(1, 1, modes=(cfg.modes,) * cfg.n_dim, width=cfg.width, n_layers=cfg.n_layers,
               projection_channels=128, padding=cfg.padding, padding_mode="symmetric", use_grid=True)


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


def measure(model: torch.nn.Module, cfg: Config, device: torch.device, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = RelativeL2Loss()
    shape = (cfg.batch_size, 1) + (cfg.resolution,) * cfg.n_dim
    x, y = torch.randn(shape, device=device), torch.randn(shape, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolution", type=int, default=None,
                        help="grid points per dim for every config (default: 64 for 2D, 1024 for 1D)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 20)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps per model")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed rounds per model, interleaved ours/theirs; the median is reported")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args(argv)
    device = torch.device(args.device)

    try:
        import neuralop  # noqa: F401

        have_neuralop = True
    except Exception as exc:  # ImportError or a broken install
        have_neuralop = False
        print(f"NOTE: neuraloperator is not importable ({exc.__class__.__name__}: {exc}); "
              "printing pdeforge numbers only. Install it with `pip install neuraloperator`.")

    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"steps={args.steps} warmup={args.warmup} repeats={args.repeats} (median)")
    header = f"{'config':<16}{'res':>6}{'batch':>6} | {'model':<12}{'params':>11}{'steps/s':>10}{'samples/s':>11}"
    print(header)
    print("-" * len(header))
    for key in args.configs:
        base = CONFIGS[key]
        cfg = Config(**{**base.__dict__,
                        "resolution": args.resolution or base.resolution,
                        "batch_size": args.batch_size or base.batch_size})
        models = {"pdeforge": build_ours(cfg)}
        if have_neuralop:
            models["neuralop"] = build_theirs(cfg)
        rounds: dict[str, list[dict]] = {name: [] for name in models}
        for _ in range(max(1, args.repeats)):  # interleave to spread machine noise evenly
            for name, model in models.items():
                rounds[name].append(measure(model, cfg, device, args.steps, args.warmup))
        results = {name: _median(rs) for name, rs in rounds.items()}
        for name, r in results.items():
            print(f"{cfg.name:<16}{cfg.resolution:>6}{cfg.batch_size:>6} | {name:<12}{r['params']:>11,}"
                  f"{r['steps_s']:>10.2f}{r['samples_s']:>11.1f}")
        if have_neuralop:
            ours, theirs = results["pdeforge"], results["neuralop"]
            same = "same" if ours["params"] == theirs["params"] else "DIFFERENT"
            print(f"{'':<28} | ratio pdeforge/neuralop: {ours['steps_s'] / theirs['steps_s']:.2f}x "
                  f"steps/s ({same} parameter count)")


if __name__ == "__main__":
    main()
