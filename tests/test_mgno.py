"""MgNO (He, Liu & Xu, ICLR 2024): V-cycle layer, boundary modes, paper size, configs and a tiny training run."""
from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import PropertyMock, patch

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from datasets.pdes.darcy import Darcy
from operators.layers.multigrid import Prolongation, VCycle, check_multigrid_size
from operators.mgno import MgNO
from operators.runtime import resolvers  # noqa: F401
from tests.conftest import CONF, run_entry_point, tiny_darcy, train_in_process

PAPER_PARAMS = 572_662  # the paper reports 0.57M for its Darcy model


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, "paths.output_dir=/tmp/x"])


def _small(padding_mode: str = "zeros", **kw) -> MgNO:
    torch.manual_seed(0)
    args = {"width": 6, "n_layers": 2, "levels": 3, "smoothing": [1, [1, 1], 2], "padding_mode": padding_mode}
    args.update(kw)
    return MgNO(2, 1, **args).double()


# ---------------------------------------------------------------------------------------------- shapes and size
@pytest.mark.parametrize("shape", [(4, 4), (16, 16), (32, 48), (8, 24)])
def test_output_shapes_at_multiples_of_the_coarsening(shape) -> None:
    model = _small()
    x = torch.randn(3, 2, *shape, dtype=torch.float64)
    assert model(x).shape == (3, 1, *shape)


@pytest.mark.parametrize("resolution", [32, 64])
def test_paper_model_shapes_and_parameter_count(resolution: int) -> None:
    model = MgNO(1, 1)  # paper Darcy defaults: 4 layers, 24 channels, 6 levels, [1,1,1,1,1,2] smoothing
    assert model.count_parameters() == PAPER_PARAMS
    assert abs(PAPER_PARAMS - 0.57e6) / 0.57e6 < 0.01
    with torch.no_grad():
        assert model(torch.randn(1, 1, resolution, resolution)).shape == (1, 1, resolution, resolution)
    # the textbook correction-scheme V-cycle has no iterate restriction Pi: 5 fewer 24x24 convs per layer
    assert MgNO(1, 1, coarse_guess="zero").count_parameters() == 468_982


def test_vcycle_structure_counts() -> None:
    vc = VCycle(3, 5, levels=4, smoothing=[1, [2, 1], 1, 2], coarse_guess="zero")
    assert [len(s) for s in vc.S] == [1, 3, 1, 2]
    assert len(vc.R) == len(vc.P) == 3 and vc.Pi is None
    # the coarsest level with 2 steps needs A; with zero guess and one step it would not
    assert all(isinstance(a, nn.Conv2d) for a in vc.A)
    vc1 = VCycle(3, 5, levels=2, smoothing=[1, 1], coarse_guess="zero")
    assert isinstance(vc1.A[1], nn.Identity)
    assert vc.A[0].weight.shape == (3, 5, 3, 3) and vc.S[0][0].weight.shape == (5, 3, 3, 3)
    assert vc.R[0].weight.shape == (3, 3, 3, 3) and vc.P[0].weight.shape == (5, 5, 4, 4)


def test_paper_experiments_compose_with_paper_settings() -> None:
    for experiment, resolution in (("mgno_darcy", 85), ("mgno_darcy_rough", 256)):
        cfg = _compose([f"experiment={experiment}"])
        network = instantiate(cfg.model)
        task = instantiate(cfg.task, network=network)
        assert sum(p.numel() for p in network.parameters()) == PAPER_PARAMS
        assert cfg.data.resolution == resolution and cfg.data.batch_size == 8
        assert cfg.task.scheduler_interval == "step" and cfg.trainer.max_epochs == 500
        assert type(task.loss_fn).__name__ == "RelativeH1Loss"
        steps = 500 * 125  # ceil(1000 / 8) steps per epoch on one device: what Lightning estimates there
        trainer = SimpleNamespace(estimated_stepping_batches=steps)
        with patch.object(type(task), "trainer", new_callable=PropertyMock, return_value=trainer):
            opt = task.configure_optimizers()
        assert opt["lr_scheduler"]["interval"] == "step"
        assert opt["optimizer"].defaults["weight_decay"] == 1e-4
        sched = opt["lr_scheduler"]["scheduler"]
        assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR)
        assert sched.total_steps == steps  # the schedule spans the trainer's optimizer steps
        assert max(g["max_lr"] for g in opt["optimizer"].param_groups) == pytest.approx(5e-4)


def test_rough_darcy_data_config() -> None:
    cfg = _compose(["data=darcy_rough"])
    assert (cfg.data.alpha, cfg.data.tau, cfg.data.a_high, cfg.data.a_low) == (2.0, 5.0, 12.0, 3.0)
    problem = Darcy(resolution=cfg.data.resolution, solver_resolution=cfg.data.solver_resolution,
                    alpha=cfg.data.alpha, tau=cfg.data.tau)
    assert problem.stride == 2 and problem.field_shapes() == {"a": (256, 256), "u": (256, 256)}
    assert problem.grf().tau == 5.0


# ---------------------------------------------------------------------------------------------- boundary modes
def test_periodic_model_commutes_with_shifts_by_the_coarsening_factor() -> None:
    model = _small("circular")
    x = torch.randn(2, 2, 16, 24, dtype=torch.float64)
    y = model(x)
    for shift in ((4, 0), (0, 8), (12, -4)):
        shifted = model(torch.roll(x, shift, dims=(-2, -1)))
        torch.testing.assert_close(shifted, torch.roll(y, shift, dims=(-2, -1)))


def test_padding_modes_give_different_operators_with_the_same_weights() -> None:
    models = {mode: _small(mode) for mode in ("zeros", "circular", "reflect")}
    state = models["zeros"].state_dict()
    for m in models.values():
        m.load_state_dict(state)
    x = torch.randn(2, 2, 16, 16, dtype=torch.float64)
    out = {mode: m(x) for mode, m in models.items()}
    for a, b in (("zeros", "circular"), ("zeros", "reflect"), ("circular", "reflect")):
        assert (out[a] - out[b]).abs().max() > 1e-3, (a, b)
    # unlike the periodic model, the Dirichlet model does not commute with shifts
    z = models["zeros"]
    assert (z(torch.roll(x, 4, dims=-1)) - torch.roll(out["zeros"], 4, dims=-1)).abs().max() > 1e-3


def test_bad_padding_mode_is_one_line_error() -> None:
    with pytest.raises(ValueError, match="padding_mode='replicate' is not allowed"):
        MgNO(1, 1, padding_mode="replicate")


def test_prolongation_matches_conv_transpose_and_periodic_wrap() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    zeros = Prolongation(3, 4, "zeros").double()
    ref = nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1, bias=False).double()
    ref.weight.data.copy_(zeros.weight.data)
    torch.testing.assert_close(zeros(x), ref(x))
    # circular: the transposed conv of the periodically tiled field, centre tile
    circ = Prolongation(3, 4, "circular").double()
    circ.weight.data.copy_(zeros.weight.data)
    tiled = ref(x.repeat(1, 1, 3, 3))
    torch.testing.assert_close(circ(x), tiled[..., 10:20, 12:24])


# ---------------------------------------------------------------------------------------------- V-cycle = multigrid
def _poisson_vcycle(levels: int, c: float = 0.05, omega: float = 0.8, coarse_steps: int = 10) -> VCycle:
    """A V-cycle whose convolutions are the classical stencils for the periodic problem (-Lap_h + c) u = f with
    h = 1 on the finest grid: five-point operator rediscretised on every level, damped Jacobi smoothing,
    full-weighting restriction, bilinear prolongation; zero coarse initial guess (correction scheme)."""
    smoothing = [[2, 2]] * (levels - 1) + [[coarse_steps, 0]]
    vc = VCycle(1, 1, levels=levels, smoothing=smoothing, padding_mode="circular", coarse_guess="zero").double()
    lap = torch.tensor([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=torch.float64)
    center = torch.zeros(3, 3, dtype=torch.float64)
    center[1, 1] = 1.0
    fw = torch.tensor([1.0, 2, 1], dtype=torch.float64)
    bil = torch.tensor([0.5, 1, 0.5, 0], dtype=torch.float64)
    with torch.no_grad():
        for level in range(levels):
            a = lap / 4 ** level + c * center
            vc.A[level].weight.copy_(a.view(1, 1, 3, 3))
            for s in vc.S[level]:
                s.weight.copy_((omega / a[1, 1] * center).view(1, 1, 3, 3))
        for level in range(levels - 1):
            vc.R[level].weight.copy_((torch.outer(fw, fw) / 16).view(1, 1, 3, 3))
            vc.P[level].weight.copy_(torch.outer(bil, bil).view(1, 1, 4, 4))
    return vc


def test_vcycle_with_classical_stencils_reduces_the_poisson_residual() -> None:
    torch.manual_seed(0)
    f = torch.randn(1, 1, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        mg = _poisson_vcycle(levels=4)
        jacobi = _poisson_vcycle(levels=1, coarse_steps=4)  # the same number of finest-grid smoothing steps
        a0 = mg.A[0]

        def residual(u: torch.Tensor, rhs: torch.Tensor) -> float:
            return float((rhs - a0(u)).norm() / rhs.norm())

        r_mg, r_jac = residual(mg(f), f), residual(jacobi(f), f)
        assert r_mg < 0.2 and r_mg < 0.5 * r_jac, (r_mg, r_jac)
        # as an iterative solver u <- u + W(f - A u), every cycle divides the residual by a mesh-independent factor
        u = torch.zeros_like(f)
        history = []
        for _ in range(4):
            u = u + mg(f - a0(u))
            history.append(residual(u, f))
        assert all(b < 0.3 * a for a, b in itertools.pairwise(history)), history


def test_residual_is_float32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    vc = VCycle(3, 4, levels=2, smoothing=[[2, 1], 1], coarse_guess="restrict", padding_mode="reflect")
    u, f = torch.randn(2, 4, 16, 16), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        f = f + vc.A[0](u)  # a nearly converged iterate: f - A u is small against both terms
        f32 = vc.residual(0, u, f)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = vc.residual(0, u.bfloat16(), f)
            out = vc(f)
        u_bf = u.bfloat16().float()  # the bf16 iterate: the residual of that iterate, at float32 accuracy
        expected_mixed, expected_f32 = f - vc.A[0](u_bf), f - vc.A[0](u)
    assert mixed.dtype == torch.float32 and out.dtype == torch.float32
    torch.testing.assert_close(mixed, expected_mixed, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f32, expected_f32, rtol=0, atol=0)  # float32 unchanged


def test_vcycle_under_bf16_autocast_stays_close_to_float32() -> None:
    """Fifty damped-Jacobi steps on the Poisson problem: with its residuals in bf16 the iteration stalls at bf16
    accuracy; with float32 residuals and iterates (smoothers still bf16) it stays within a fraction of that."""
    torch.manual_seed(0)
    vc = _poisson_vcycle(levels=1, coarse_steps=50).float()
    pure_bf16 = _poisson_vcycle(levels=1, coarse_steps=50).to(torch.bfloat16)
    f = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        reference = vc(f)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = vc(f)
        pure = pure_bf16(f.bfloat16()).float()

    def error(u: torch.Tensor) -> float:
        return float((u - reference).norm() / reference.norm())

    assert mixed.dtype == torch.float32
    assert error(mixed) < 0.1 * error(pure), (error(mixed), error(pure))


def test_vcycle_is_linear() -> None:
    torch.manual_seed(0)
    vc = VCycle(2, 3, levels=3, smoothing=[[1, 1], 1, 2], coarse_guess="restrict").double()
    f, g = torch.randn(2, 1, 2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(vc(2 * f - 3 * g), 2 * vc(f) - 3 * vc(g))


# ---------------------------------------------------------------------------------------------- gradients, errors
def test_every_parameter_receives_a_gradient() -> None:
    model = _small("reflect")
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    model(x).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_grid_size_not_divisible_is_a_one_line_error() -> None:
    model = MgNO(1, 1, width=4, n_layers=1, levels=6)
    with pytest.raises(ValueError) as info:
        model(torch.randn(1, 1, 85, 85))
    msg = str(info.value)
    assert "\n" not in msg
    assert "levels=6" in msg and "85x85" in msg and "32, 64, 96" in msg and "pad_to_multiple" in msg
    with pytest.raises(ValueError, match="divisible by 2\\^\\(levels-1\\) = 4; got 8x10"):
        check_multigrid_size((8, 10), 3)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
def test_pad_to_multiple_crops_back(mode: str) -> None:
    model = _small(mode, pad_to_multiple=True, levels=3, smoothing=[1, 1, 2])
    x = torch.randn(2, 2, 17, 10, dtype=torch.float64)
    y = model(x)
    assert y.shape == (2, 1, 17, 10)
    # the same as padding by hand: 17 -> 20 (1 + 2 points), 10 -> 12 (1 + 1)
    manual = _small(mode, levels=3, smoothing=[1, 1, 2])
    manual.load_state_dict(model.state_dict())
    f_mode = {"zeros": "constant", "reflect": "reflect", "circular": "circular"}[mode]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 2), mode=f_mode)
    torch.testing.assert_close(y, manual(padded)[..., 1:18, 1:11])


# ---------------------------------------------------------------------------------------------- training
def _tiny_mgno(data_dir: Path) -> list[str]:
    """experiment=mgno_darcy on the 17x17 tiny Darcy set of the other tests (same data cache): 3 levels, the
    17-point grid padded to 20 inside the model; one-cycle per batch, relative H1 loss as in the experiment."""
    keep = [o for o in tiny_darcy(data_dir) if not o.startswith(("data=", "model."))]
    return ["experiment=mgno_darcy", *keep, "model.width=6", "model.n_layers=2", "model.levels=3",
            "model.smoothing=[1,1,2]", "callbacks.prediction_plot=null"]


def test_train_mgno_through_the_entry_point(data_dir: Path, tmp_path: Path) -> None:
    metrics = train_in_process(_tiny_mgno(data_dir), tmp_path)
    assert 0 < metrics["test/rel_l2"] < 2.0 and metrics["n_parameters"] > 0
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["pdeforge"]["config"]["model"]["_target_"] == "operators.mgno.MgNO"
    # one-cycle stepped once per batch: 2 epochs x ceil(16 / 4) batches, exactly its total
    sched = ckpt["lr_schedulers"][0]
    assert sched["last_epoch"] == sched["total_steps"] == 8


def test_train_rejects_a_grid_the_vcycle_cannot_coarsen(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs grid sizes divisible by .* got 17x17"):
        train_in_process([*_tiny_mgno(data_dir), "model.pad_to_multiple=false"], tmp_path)


def test_train_cli_reports_the_grid_error_on_one_line(data_dir: Path, tmp_path: Path) -> None:
    proc = run_entry_point("train.py", *_tiny_mgno(data_dir), "model.pad_to_multiple=false",
                           f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.strip().splitlines() if "divisible by" in line]
    assert len(lines) == 1 and "17x17" in lines[0], proc.stderr[-2000:]
