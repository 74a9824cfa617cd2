"""SFNO (spatiotemporal FNO) and the Spectral-Refiner fine-tuning stage."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from datasets.pdes.navier_stokes import forcing, solve_navier_stokes
from operators.layers.space_time import ResamplingSpectralConv
from operators.physics import NavierStokesResidual
from operators.sfno import SFNO
from operators.tasks.spectral_refiner import SpectralRefiner
from tests.conftest import run_entry_point


def tiny_sfno(**kw) -> SFNO:
    args = {"in_channels": 1, "t_in": 3, "n_steps_out": 4, "modes": (4, 4, 2), "width": 8, "n_layers": 2,
            "latent_steps": 4, "ffn_channels": 16}
    args.update(kw)
    return SFNO(**args)


@pytest.mark.parametrize("res", [16, 24, 32])
@pytest.mark.parametrize("t_out", [1, 4, 7, 40])
def test_output_shapes(res: int, t_out: int) -> None:
    torch.manual_seed(0)
    model = tiny_sfno()
    x = torch.randn(2, 3, res, res)
    assert model(x, n_steps_out=t_out).shape == (2, t_out, res, res)
    assert model(x).shape == (2, 4, res, res)
    assert model(torch.randn(1, 5, res, res)).shape == (1, 4, res, res)  # any input length


def test_prediction_is_last_frame_plus_increment_and_shape_errors() -> None:
    model = tiny_sfno()
    with torch.no_grad():
        model.output.weight.zero_()
    x = torch.randn(2, 3, 16, 16)
    y = model(x, n_steps_out=5)
    assert torch.allclose(y, x[:, -1:].expand_as(y))
    with pytest.raises(ValueError, match="modes"):
        model(torch.randn(1, 3, 6, 6))
    with pytest.raises(ValueError):
        SFNO(modes=(4, 4))


def test_gradient_flow() -> None:
    torch.manual_seed(0)
    model = tiny_sfno()
    loss = model(torch.randn(2, 3, 16, 16), n_steps_out=6).pow(2).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_paper_model_size() -> None:
    # reference configuration (FNO NS data, nu = 1e-3): modes 12/12/5, width 20, 4 spectral layers
    assert SFNO(modes=(12, 12, 5), width=20, n_layers=4, latent_steps=10).count_parameters() == 9_239_371


def _band_limited(res: int, t: int) -> torch.Tensor:
    x = torch.arange(res, dtype=torch.float64) / res
    gx, gy = torch.meshgrid(x, x, indexing="ij")
    frames = [torch.sin(2 * math.pi * (gx + 2 * gy) + 0.3 * k) + 0.5 * torch.cos(2 * math.pi * 3 * gx - 0.2 * k)
              for k in range(t)]
    return torch.stack(frames, -1)[None, None]  # (1, 1, res, res, t)


@pytest.mark.parametrize("time_padding", [False, True])
def test_mode_enlargement_copies_low_modes_exactly(time_padding: bool) -> None:
    torch.manual_seed(0)
    layer = ResamplingSpectralConv(2, 3, (4, 4, 2), time_padding=time_padding).double()
    big = layer.enlarged((8, 8, 3))
    assert big.time_padding == time_padding
    v = _band_limited(16, 6).expand(1, 2, 16, 16, 6).contiguous()
    for t_out in (6, 9):
        assert torch.allclose(big(v, out_steps=t_out), layer(v, out_steps=t_out), atol=1e-12)
    v = torch.randn(2, 2, 16, 16, 6, dtype=torch.float64)  # new modes start at zero: same map on any input
    assert torch.allclose(big(v), layer(v), atol=1e-12)
    w_old, w_new = layer.weight, big.weight
    assert torch.equal(w_new[:, :, :4, :4, :2], w_old[:, :, :4, :4, :2])       # (+kx, +ky)
    assert torch.equal(w_new[:, :, 12:, 12:, :2], w_old[:, :, 4:, 4:, :2])     # (-kx, -ky)
    assert torch.equal(w_new[:, :, :4, 12:, :2], w_old[:, :, :4, 4:, :2])      # (+kx, -ky)
    assert w_new[:, :, 4:12].abs().sum() == 0 and w_new[..., 2, :].abs().sum() == 0
    with pytest.raises(ValueError):
        layer.enlarged((2, 4, 2))


def test_refiner_freezes_all_but_the_output_layer_and_loads_stage1_weights() -> None:
    torch.manual_seed(0)
    stage1 = tiny_sfno()
    state = {f"network.{k}": v for k, v in stage1.state_dict().items()}
    task = SpectralRefiner(tiny_sfno(), refine_modes=[8, 8, None])
    assert task.network.output.modes == (8, 8, 5)  # every mode: 16 x 16 grid, 4 latent steps padded to 8
    task.load_pretrained_state_dict(state)
    trainable = {n for n, p in task.named_parameters() if p.requires_grad}
    assert trainable == {"network.output.weight"}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(task.predict_batch({"x": x}), stage1(x), atol=1e-6)
        assert torch.allclose(task.predict_initial({"x": x}), stage1(x), atol=1e-6)


def test_refinement_reduces_the_residual() -> None:
    torch.manual_seed(0)
    n, nu = 16, 1e-3
    x = torch.arange(n, dtype=torch.float64) / n
    gx, gy = torch.meshgrid(x, x, indexing="ij")
    w0 = torch.stack([torch.sin(2 * math.pi * (gx + s * gy)) + 0.5 * torch.cos(2 * math.pi * (2 * gx - gy) + s)
                      for s in range(2)])
    traj = solve_navier_stokes(w0, nu, [0.0, 0.5, 1.0], 1e-2, forcing(n, 0.1)).float()
    task = SpectralRefiner(tiny_sfno(), refine_modes=[8, 8, None], time_refinement=2)
    task.residual = NavierStokesResidual(nu=nu, forcing=lambda m: forcing(m, 0.1), dt=0.5)
    batch = {"x": traj}
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=1e-2)
    with torch.no_grad():
        before = float(task.refinement_loss(batch).mean())
    for _ in range(15):
        opt.zero_grad()
        loss = task.refinement_loss(batch).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(task.refinement_loss(batch).mean())
    assert after < 0.7 * before, (before, after)


def test_refinement_loss_under_bf16_autocast_is_the_float32_residual_of_the_prediction() -> None:
    torch.manual_seed(0)
    task = SpectralRefiner(tiny_sfno(), refine_modes=[8, 8, None], time_refinement=2, time_order=4)
    residual = NavierStokesResidual(nu=1e-3, forcing=lambda m: forcing(m, 0.1).float(), dt=0.5, time_order=4)
    task.residual = residual
    batch = {"x": torch.randn(2, 3, 16, 16)}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = task.refinement_loss(batch)
        pred = task.network(batch["x"], n_steps_out=8)  # the same bf16-autocast prediction
        metric = task.residual_h_minus_1(residual, pred)
    assert pred.dtype == loss.dtype == metric.dtype == torch.float32
    with torch.no_grad():
        expected = residual.h_minus_1(pred, dt=0.25)  # float32, no autocast
        torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
        torch.testing.assert_close(metric, residual.h_minus_1(pred), rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------------------------- entry points
def tiny_ns(data_dir: Path) -> list[str]:
    return ["data=navier_stokes", "data.n_train=8", "data.n_val=2", "data.n_test=2", "data.solver_resolution=32",
            "data.resolution=16", "data.t_final=6", "data.dt=1e-2", "data.input_steps=1:3", "data.target_steps=3:7",
            "data.in_channels=2", "data.n_target_steps=4", "data.batch_size=4", "logger=csv",
            "callbacks.rich_model_summary=null", "callbacks.prediction_plot=null", "trainer.enable_progress_bar=false",
            f"paths.data_dir={data_dir}"]


def test_stage1_then_stage2_then_evaluate(data_dir: Path, tmp_path: Path) -> None:
    stage1 = tmp_path / "stage1"
    proc = run_entry_point("train.py", "experiment=sfno_ns", *tiny_ns(data_dir), "model.modes=[4,4,2]",
                           "model.width=8", "model.n_layers=2", "model.latent_steps=4", "model.ffn_channels=16",
                           "trainer.max_epochs=2", f"hydra.run.dir={stage1}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m1 = json.loads((stage1 / "metrics.json").read_text())
    assert 0 < m1["test/rel_l2"] < 2
    ckpt1 = stage1 / "checkpoints" / "last.ckpt"

    stage2 = tmp_path / "stage2"
    proc = run_entry_point("train.py", "experiment=sfno_ns_refine", *tiny_ns(data_dir), f"init_from_ckpt={ckpt1}",
                           "trainer.max_steps=4", "task.time_refinement=2", f"hydra.run.dir={stage2}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m2 = json.loads((stage2 / "metrics.json").read_text())
    # output layer (1 -> 1 channel) enlarged from modes (4, 4, 2) to the full grid (8, 8, 5): 16 x 16 x 5 x 2
    assert m2["n_parameters"] == m1["n_parameters"] - 8 * 8 * 2 * 2 + 16 * 16 * 5 * 2
    assert 0 < m2["test/rel_l2"] < 2 and m2["test/ns_residual_h-1"] > 0
    ckpt2 = stage2 / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt2, weights_only=False)["global_step"] == 4  # a new run, 4 iterations

    out = tmp_path / "eval"
    proc = run_entry_point("evaluate.py", f"ckpt_path={ckpt2}", "logger=csv", "eval.plots=false",
                           f"paths.data_dir={data_dir}", f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "metrics.json").read_text())["results"]["16"]
    for key in ("rel_l2", "ns_residual_h-1", "ns_residual_h-1_truth", "rel_l2_before_refinement",
                "ns_residual_h-1_before_refinement"):
        assert res[key] > 0, key
    assert "ns_residual_h-1" in proc.stdout
