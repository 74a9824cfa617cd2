"""Latent Spectral Model: neural spectral block, U-Net blocks, padding/cropping, paper sizes, train.py run."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from operators.layers.neural_spectral_block import (
    LatentSpectralTransition,
    NeuralSpectralBlock,
    patchify,
    unpatchify,
)
from operators.layers.unet_blocks import DoubleConv, Down, Up
from operators.lsm import LSM
from operators.runtime import resolvers  # noqa: F401
from operators.tasks.rollout import AutoregressiveRollout
from tests.conftest import CONF, tiny_darcy, train_in_process


def _tiny(in_channels: int = 1, out_channels: int = 1, **kw) -> LSM:
    kw = {"width": 8, "patch_size": (2, 2), "num_heads": 4, "num_basis": 4, "num_tokens": 2,
          "projection_channels": 16, **kw}
    return LSM(in_channels, out_channels, **kw)


# ----------------------------------------------------------------------------------------------- spectral block


def test_transition_with_zero_weights_is_identity() -> None:
    transition = LatentSpectralTransition(channels=6, num_basis=5)
    with torch.no_grad():
        transition.sin_weight.zero_()
        transition.cos_weight.zero_()
    tokens = torch.randn(3, 4, 6)
    torch.testing.assert_close(transition(tokens), tokens)


def test_transition_matches_hand_computation() -> None:
    transition = LatentSpectralTransition(channels=2, num_basis=3)
    with torch.no_grad():
        transition.sin_weight.copy_(torch.tensor([[0.5, 1.0, -2.0], [0.0, 0.3, 0.0]]))
        transition.cos_weight.copy_(torch.tensor([[0.1, 0.0, 0.0], [0.0, 0.0, 0.7]]))
    tokens = torch.tensor([[0.4, -1.2]], dtype=torch.float64)
    out = transition.double()(tokens)
    t0, t1 = 0.4, -1.2
    # K = 3: frequencies k pi / 3, k = 0, 1, 2 (sin 0 = 0, cos 0 = 1)
    expect0 = t0 + 1.0 * math.sin(math.pi * t0 / 3) - 2.0 * math.sin(2 * math.pi * t0 / 3) + 0.1
    expect1 = t1 + 0.3 * math.sin(math.pi * t1 / 3) + 0.7 * math.cos(2 * math.pi * t1 / 3)
    torch.testing.assert_close(out, torch.tensor([[expect0, expect1]], dtype=torch.float64))


def test_patchify_round_trip_and_layout() -> None:
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    patches = patchify(x, (2, 3))
    assert patches.shape == (2 * 2 * 2, 3, 6)
    # second patch of the first sample: rows 0-1, columns 3-5
    torch.testing.assert_close(patches[1], x[0, :, 0:2, 3:6].reshape(3, 6))
    torch.testing.assert_close(unpatchify(patches, (2, 3), (4, 6)), x)
    x3 = torch.randn(1, 2, 4, 2, 6)
    torch.testing.assert_close(unpatchify(patchify(x3, (2, 1, 3)), (2, 1, 3), (4, 2, 6)), x3)
    with pytest.raises(ValueError, match="multiple of the patch"):
        patchify(torch.zeros(1, 1, 5, 6), (2, 3))


def test_spectral_block_is_patch_local_and_shape_preserving() -> None:
    torch.manual_seed(0)
    block = NeuralSpectralBlock(8, (3, 2), num_basis=4, num_tokens=2, num_heads=4)
    x = torch.randn(2, 8, 6, 4)
    y = block(x)
    assert y.shape == x.shape
    # changing one patch leaves the other patches' outputs untouched (the block works patch by patch)
    x2 = x.clone()
    x2[:, :, 0:3, 0:2] += 1.0
    y2 = block(x2)
    torch.testing.assert_close(y2[:, :, 3:, :], y[:, :, 3:, :])
    torch.testing.assert_close(y2[:, :, :, 2:], y[:, :, :, 2:])
    assert not torch.allclose(y2[:, :, 0:3, 0:2], y[:, :, 0:3, 0:2])


def test_spectral_block_matches_reference_attention() -> None:
    """The block equals a hand-written einsum version of encode -> spectral -> decode on one patch."""
    torch.manual_seed(1)
    c, heads, tokens = 4, 2, 3
    block = NeuralSpectralBlock(c, (2, 2), num_basis=3, num_tokens=tokens, num_heads=heads).double()
    x = torch.randn(1, c, 2, 2, dtype=torch.float64)
    pts = x.reshape(c, 4).T  # (L, C), row-major points
    kv = pts @ block.encoder_kv.weight.T + block.encoder_kv.bias
    k, v = kv[:, :c], kv[:, c:]
    d = c // heads
    latent = []
    for h in range(heads):
        t0 = block.latent[h]  # (M, d)
        att = torch.softmax(t0 @ k[:, h * d:(h + 1) * d].T, dim=-1)  # no 1/sqrt(d) scaling (official code)
        latent.append(att @ v[:, h * d:(h + 1) * d] + t0)
    t = torch.cat(latent, dim=1)  # (M, C)
    freq = torch.arange(3, dtype=torch.float64) * math.pi / 3
    t = t + (torch.sin(t[..., None] * freq) * block.transition.sin_weight).sum(-1) \
          + (torch.cos(t[..., None] * freq) * block.transition.cos_weight).sum(-1)
    q = pts @ block.decoder_q.weight.T + block.decoder_q.bias
    out = torch.cat([torch.softmax(q[:, h * d:(h + 1) * d] @ t[:, h * d:(h + 1) * d].T, dim=-1)
                     @ t[:, h * d:(h + 1) * d] for h in range(heads)], dim=1) + pts
    torch.testing.assert_close(block(x), out.T.reshape(1, c, 2, 2))


def test_spectral_block_rejects_bad_heads() -> None:
    with pytest.raises(ValueError, match="multiple of num_heads"):
        NeuralSpectralBlock(12, (2, 2), num_heads=8)


# ------------------------------------------------------------------------------------------------- U-Net blocks


def test_unet_blocks_shapes() -> None:
    x = torch.randn(2, 4, 10, 7)
    assert DoubleConv(4, 6, n_dim=2)(x).shape == (2, 6, 10, 7)
    down = Down(4, 8, n_dim=2)(x)
    assert down.shape == (2, 8, 5, 3)
    # odd sizes: the upsampled field is zero-padded to the skip's size
    assert Up(8 + 4, 4, n_dim=2)(down, x).shape == (2, 4, 10, 7)
    assert DoubleConv(3, 5, n_dim=1, norm="group")(torch.randn(2, 3, 9)).shape == (2, 5, 9)


# -------------------------------------------------------------------------------------------------- the network


@pytest.mark.parametrize("size", [(16, 16), (33, 33), (85, 85), (17, 40), (64, 64)])
def test_output_shapes_any_resolution(size) -> None:
    model = _tiny(3, 2)
    x = torch.randn(2, 3, *size)
    assert model(x).shape == (2, 2, *size)


def test_padding_and_cropping() -> None:
    model = _tiny(patch_size=(2, 3))
    assert model.grid_multiple() == (32, 48)
    assert model.padded_shape((33, 33)) == (64, 48)
    assert model.padded_shape((32, 48)) == (32, 48)
    paper = LSM(1, 1, width=8, patch_size=(6, 6))
    assert paper.padded_shape((85, 85)) == (96, 96)  # official Darcy script: 85 + 11
    assert LSM(10, 1, width=8, patch_size=(4, 4)).padded_shape((64, 64)) == (64, 64)
    # the backbone runs on the padded grid (zeros appended at the end of each dim) and the output is cropped
    model.eval()
    seen = {}
    hook = model.encoder[0].register_forward_hook(lambda m, i, o: seen.update(shape=i[0].shape, inp=i[0]))
    x = torch.randn(1, 1, 33, 33)
    y = model(x)
    hook.remove()
    assert seen["shape"][2:] == (64, 48)
    assert torch.all(seen["inp"][..., 33:, :] == 0) and torch.all(seen["inp"][..., :, 33:] == 0)
    assert y.shape == (1, 1, 33, 33)
    # the result on the original points equals running on the grid padded by hand (same grid coordinates)
    v = model.lifting(model.grid(x))
    v = torch.nn.functional.pad(v, (0, 48 - 33, 0, 64 - 33))
    manual = model.projection(model.backbone(v)[..., :33, :33])
    torch.testing.assert_close(y, manual)


def test_one_and_three_dimensional_variants() -> None:
    assert _tiny(patch_size=(2,), n_scales=3)(torch.randn(2, 1, 21)).shape == (2, 1, 21)
    assert _tiny(patch_size=(1, 1, 1), n_scales=2)(torch.randn(1, 1, 5, 6, 3)).shape == (1, 1, 5, 6, 3)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = _tiny(2, 1)
    x = torch.randn(2, 2, 19, 23)
    model(x).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
               or p.grad.abs().sum() == 0]
    # the sin weight of the k = 0 basis function multiplies sin(0) = 0 (kept, as in the official code)
    missing = [n for n in missing if not n.endswith("transition.sin_weight")]
    assert not missing, missing
    for block in model.spectral_blocks:
        assert block.transition.sin_weight.grad[:, 1:].abs().sum() > 0
    x.requires_grad_(True)
    model(x).sum().backward()
    assert x.grad.abs().sum() > 0


def _official_parameter_count(c_in: int, c_out: int, w: int, num_basis: int = 12, num_tokens: int = 4) -> int:
    """Parameters of the official LSM2d (thuml/Latent-Spectral-Models models/LSM_2D.py), counted by hand:
    DoubleConv = 2 x (3x3 conv without bias + BatchNorm), bilinear Up with mid = in // 2,
    NeuralSpectralBlock2d = weights (C, 2K) + latent (H, M, C/H) + 1x1 convs C -> 2C and C -> C."""
    def double_conv(i, o, m=None):
        m = m or o
        return 9 * i * m + 2 * m + 9 * m * o + 2 * o

    def nsb(c):
        return c * 2 * num_basis + num_tokens * c + (2 * c * c + 2 * c) + (c * c + c)

    convs = (double_conv(w, w) + double_conv(w, 2 * w) + double_conv(2 * w, 4 * w) + double_conv(4 * w, 8 * w)
             + double_conv(8 * w, 8 * w) + double_conv(16 * w, 4 * w, 8 * w) + double_conv(8 * w, 2 * w, 4 * w)
             + double_conv(4 * w, w, 2 * w) + double_conv(2 * w, w, w) + (w * w + w))
    spectral = sum(nsb(c) for c in (w, 2 * w, 4 * w, 8 * w, 8 * w))
    heads = ((c_in + 2) * w + w) + (w * 128 + 128) + (128 * c_out + c_out)
    return convs + spectral + heads


@pytest.mark.parametrize("experiment,in_channels,expected", [("lsm_darcy", 1, 19_187_457), ("lsm_ns", 10, 19_188_033)])
def test_paper_model_sizes(experiment: str, in_channels: int, expected: int) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}", "paths.output_dir=/tmp/x"])
    model = instantiate(cfg.model)
    assert isinstance(model, LSM) and model.in_channels == in_channels and model.out_channels == 1
    assert model.scale_channels == (64, 128, 256, 512, 512)
    n = model.count_parameters()
    assert n == expected == _official_parameter_count(in_channels, 1, 64)


def test_works_as_rollout_step_map() -> None:
    torch.manual_seed(0)
    task = AutoregressiveRollout(_tiny(10, 1))
    x = torch.randn(2, 10, 16, 16)
    traj = task.rollout(x, n_steps=3)
    assert traj.shape == (2, 3, 16, 16)
    traj.mean().backward()
    assert task.network.lifting.weight.grad is not None


# --------------------------------------------------------------------------------------------- through train.py


def test_train_lsm_darcy_tiny(data_dir: Path, tmp_path: Path) -> None:
    overrides = [o for o in tiny_darcy(data_dir) if not o.startswith(("model.", "data=", "trainer.max_epochs"))]
    overrides += ["data=darcy_small", "model=lsm", "model.width=8", "model.num_heads=4", "model.patch_size=[2,2]",
                  "model.num_basis=4", "model.num_tokens=2", "model.projection_channels=16", "trainer.max_epochs=1",
                  "task/scheduler=step", "task.optimizer.lr=5e-4", "callbacks.prediction_plot=null"]
    metrics = train_in_process(overrides, tmp_path)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["test/rel_l2"] == pytest.approx(metrics["test/rel_l2"])
    assert math.isfinite(stored["test/rel_l2"]) and 0 < stored["test/rel_l2"] < 5.0
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["pdeforge"]["config"]["model"]["_target_"] == "operators.lsm.LSM"
