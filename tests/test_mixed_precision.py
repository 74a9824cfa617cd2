"""bf16 autocast (``trainer.precision=bf16-mixed``) inside the networks: every network returns float32 for
float32 input, computed by an output layer that runs in full precision (operators.layers.precision)."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from operators.fno import FNO
from operators.layers import ChannelLinear, ChannelMLP, SpectralConv
from operators.lsm import LSM
from operators.mgno import MgNO
from operators.sfno import SFNO
from operators.space_time_fno import SpaceTimeFNO

AUTOCAST = {"device_type": "cpu", "dtype": torch.bfloat16}

# name -> (network factory, input shape, the network's output layer)
NETWORKS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], Callable[[nn.Module], nn.Module]]] = {
    "fno": (lambda: FNO(1, 1, modes=(4, 4), width=8, n_layers=2, projection_channels=16, padding=0.1),
            (2, 1, 17, 17), lambda m: m.projection),
    "space_time_fno": (lambda: SpaceTimeFNO(1, t_in=2, n_steps_out=3, modes=(3, 3, 2), width=6, n_layers=2,
                                            time_padding=2, projection_channels=8),
                       (2, 2, 12, 12), lambda m: m.fno.projection),
    "sfno": (lambda: SFNO(1, t_in=3, n_steps_out=4, modes=(4, 4, 2), width=8, n_layers=2, latent_steps=4,
                          ffn_channels=16), (2, 3, 16, 16), lambda m: m.output),
    "mgno": (lambda: MgNO(1, 1, width=6, n_layers=2, levels=3, pad_to_multiple=True), (2, 1, 17, 17),
             lambda m: m.projection),
    "lsm": (lambda: LSM(1, 1, width=8, patch_size=(2, 2), num_heads=4, num_basis=4, num_tokens=2,
                        projection_channels=16), (2, 1, 17, 17), lambda m: m.projection),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_returns_float32_under_bf16_autocast(name: str) -> None:
    factory, shape, output_layer = NETWORKS[name]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(*shape)
    layer_dtypes = []
    output_layer(model).register_forward_hook(lambda mod, args, out: layer_dtypes.append(out.dtype))
    with torch.no_grad():
        reference = model(x)
        with torch.autocast(**AUTOCAST):
            y = model(x)
    assert y.dtype == torch.float32 and layer_dtypes == [torch.float32, torch.float32], (y.dtype, layer_dtypes)
    assert y.shape == reference.shape
    # bf16 inside: close to the float32 model, not equal
    assert 0 < float((y - reference).norm() / reference.norm()) < 0.1
    # a model converted as a whole keeps its dtype
    with torch.no_grad():
        assert model.to(torch.bfloat16)(x.to(torch.bfloat16)).dtype == torch.bfloat16
        assert model.to(torch.float64)(x.to(torch.float64)).dtype == torch.float64


def test_full_precision_output_layers() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 5)
    plain, full = ChannelLinear(8, 3), ChannelLinear(8, 3, full_precision=True)
    full.load_state_dict(plain.state_dict())
    mlp = ChannelMLP(8, 3, hidden_channels=16, full_precision_output=True)
    spectral = SpectralConv(8, 3, (2, 2), full_precision=True)
    with torch.autocast(**AUTOCAST):
        assert plain(x).dtype == torch.bfloat16
        y = full(x)
        assert y.dtype == torch.float32
        assert mlp(x).dtype == torch.float32
        assert spectral(x.bfloat16()).dtype == torch.float32
    torch.testing.assert_close(y, plain(x), rtol=0, atol=0)  # float32 input: exactly the float32 layer
    assert "full_precision=True" in repr(full) and "full_precision=True" not in repr(plain)
    assert [m.full_precision for m in mlp.layers if isinstance(m, ChannelLinear)] == [False, True]
