"""MP-PDE rollout time against our WENO5 solver on the same test trajectories, in one run (MP-PDE paper, Table 1).

For one experiment (``mppde_e1`` by default) the script loads the test split the experiment evaluates on, then
times, on the same trajectories:

* **WENO5**: :func:`datasets.pdes.combined_equation.solve_combined_equation` solving every test trajectory again
  *directly at the network's grid* (``nx = data.resolution``) from the per-sample parameters stored in the file,
  from t = 0 to T (the paper's "WENO5" baseline row; batched, all trajectories at once, and one trajectory alone);
* **MP-PDE**: the trained network (``--ckpt``; a freshly initialised one of the experiment's size otherwise: the
  time does not depend on the weights) rolling out steps 50..249 from the true window u[25:50] (all trajectories
  in one graph batch, and one trajectory alone).

It prints both times, their ratio and the accumulated error of each against the filtered reference solution
(``sum_t mean_x (u - u_ref)^2`` over steps 50..249, averaged over trajectories).

Usage::

    python benchmarks/mppde_rollout.py                                    # E1, 128 test trajectories, CPU
    python benchmarks/mppde_rollout.py --experiment mppde_e3 --n 32 --ckpt logs/.../last.ckpt
    python benchmarks/mppde_rollout.py --device cuda --set data.resolution=50
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from datasets.batching import to_device  # noqa: E402
from datasets.pdes.combined_equation import five_point_coarsen  # noqa: E402
from datasets.runtime import resolvers  # noqa: E402,F401
from operators.losses import AccumulatedSquaredError  # noqa: E402
from operators.runtime.builders import instantiate  # noqa: E402
from operators.runtime.checkpoints import checkpoint_config, load_checkpoint  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int = 1) -> tuple[float, object]:
    out = fn()  # warm-up (kernels, caches)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="mppde_e1")
    parser.add_argument("--ckpt", default=None, help="trained MP-PDE checkpoint (default: a fresh network)")
    parser.add_argument("--n", type=int, default=128, help="test trajectories")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--set", action="append", default=[], help="extra config override, e.g. data.resolution=50")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={args.experiment}", f"data.n_test={args.n}",
                                          f"paths.root_dir={ROOT}", *args.set])
    if args.ckpt:
        run_cfg = OmegaConf.create(checkpoint_config(load_checkpoint(args.ckpt)))
        cfg.model, cfg.task = run_cfg.model, run_cfg.task
    datamodule = instantiate(cfg.data, _recursive_=False)
    network = instantiate(cfg.model)
    task = instantiate(cfg.task, network=network)
    if args.ckpt:
        task.load_state_dict(load_checkpoint(args.ckpt)["state_dict"])
    task.eval().to(device)
    problem = datamodule.problem
    nx, stride = problem.resolution, problem.read_stride

    # the test trajectories and their stored parameters, as the experiment loads them
    stored = datamodule.cache.load_split(problem, datamodule.seed, "test", args.n)
    params = {k: torch.as_tensor(stored.fields[k]) for k in problem.parameter_fields}
    datamodule.setup("test")
    first_in, first_out = datamodule.input_steps[0], datamodule.target_steps[0]
    truth = torch.as_tensor(stored.fields["u"])[:, first_out:]  # (N, 200, nx) filtered reference
    batch = to_device(datamodule.example_batch("test", args.n), device)
    one = to_device(datamodule.example_batch("test", 1), device)
    metric = AccumulatedSquaredError(reduction="none")

    def weno(p):
        return problem.solve({k: v.to(device) for k, v in p.items()}, nx=nx, device=device)

    t_weno, u_weno = _timed(lambda: weno(params), device)
    t_weno_one, _ = _timed(lambda: weno({k: v[:1] for k, v in params.items()}), device)
    acc_weno = metric.per_sample(u_weno[:, first_out:].float().cpu(), truth).mean()

    with torch.no_grad():
        t_net, pred = _timed(lambda: task.predict_batch(batch), device, repeats=3)
        t_net_one, _ = _timed(lambda: task.predict_batch(one), device, repeats=3)
    acc_net = metric.sample_values(pred.float(), batch["y"].float(), getattr(batch, "batch", None),
                                   args.n).mean()
    # the filtered reference, re-derived from a direct solve at the solver grid, for the first trajectory
    ref0 = problem.solve({k: v[:1].to(device) for k, v in params.items()}, device=device)
    ref0 = five_point_coarsen(ref0, stride)[:, first_out:].float().cpu() if stride > 1 else ref0[:, first_out:]

    name = type(network).__name__
    print(f"pdeforge {args.experiment}: {args.n} test trajectories at nx = {nx}, steps {first_out}..249 from the "
          f"window {first_in}..{first_out - 1}, device {device}, {torch.get_num_threads()} threads")
    print(f"{'method':<34} {'all (s)':>10} {'one (s)':>10} {'accumulated error':>18}")
    print(f"{'WENO5 direct solve at nx (t=0..T)':<34} {t_weno:>10.3f} {t_weno_one:>10.3f} {float(acc_weno):>18.4f}")
    print(f"{name + ' rollout':<34} {t_net:>10.3f} {t_net_one:>10.3f} {float(acc_net):>18.4f}")
    print(f"speed-up WENO5 / {name}: {t_weno / t_net:.1f}x (all), {t_weno_one / t_net_one:.1f}x (one trajectory)")
    print("paper (E1, nx = 100, GPU): MP-PDE 0.09 s, WENO5 1.9 s per trajectory batch; accumulated error "
          "MP-PDE 1.55, WENO5 2.02")
    print(f"check: re-solved reference of trajectory 0 vs stored: max |diff| = "
          f"{float((ref0[0] - truth[0]).abs().max()):.2e}")
    if not args.ckpt:
        print("(no --ckpt: the network is untrained, so its error is meaningless; its time is not)")


if __name__ == "__main__":
    os.environ.setdefault("WANDB_MODE", "offline")
    main()
