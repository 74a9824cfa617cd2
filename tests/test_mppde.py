"""Tests for operators.mppde.MPPDE and its processor layer operators.layers.pde_message_passing."""

from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch, Data

from datasets.neighbors import radius_graph
from operators.layers.pde_message_passing import PDEMessagePassing, relative_position
from operators.mppde import MPPDE, decoder_geometry

CONF = Path(__file__).resolve().parents[1] / "conf"


def _graph(n: int, k: int, seed: int, n_params: int = 0, d: int = 1, periodic: bool = True, n_fields: int = 1,
           irregular: bool = False) -> Data:
    """One graph: ``n`` nodes in the unit box (a regular periodic grid in 1-D, or random points), radius edges
    reaching ~2 neighbours per side, a random window ``x`` ``(n, k F)``, a time and parameters."""
    g = torch.Generator().manual_seed(seed)
    if d == 1 and not irregular:
        pos = (torch.arange(n, dtype=torch.float32) / n)[:, None]
        r = 2.5 / n
    else:
        pos = torch.rand(n, d, generator=g)
        r = 0.3 if d > 1 else 3.0 / n
    edge_index = radius_graph(pos, r, periodic_length=1.0 if periodic else None)
    data = Data(x=torch.randn(n, k * n_fields, generator=g), pos=pos, edge_index=edge_index,
                time=torch.rand(1, generator=g))
    if n_params:
        data.params = torch.rand(1, n_params, generator=g)
    return data


def _official_count(k: int, hidden: int, n_layers: int, n_eq: int) -> int:
    """The parameter count of the official ``MP_PDE_Solver`` (1-D, ``eq_variables`` of ``n_eq`` entries), from its
    layer sizes: embedding Linear(K + 2 + n_eq, H), Linear(H, H); per layer message Linear(2H + K + 1 + V, H),
    Linear(H, H), update Linear(2H + V, H), Linear(H, H) with V = n_eq + 1 (time); decoder Conv1d(1, 8, k1),
    Conv1d(8, 1, k2)."""
    def lin(i, o):
        return i * o + o

    v = n_eq + 1
    k1, _, k2 = decoder_geometry(hidden, k)
    enc = lin(k + 2 + n_eq, hidden) + lin(hidden, hidden)
    layer = lin(2 * hidden + k + 1 + v, hidden) + lin(hidden, hidden) + lin(2 * hidden + v, hidden) + lin(hidden, hidden)
    return enc + n_layers * layer + (8 * k1 + 8) + (8 * k2 + 1)


def test_official_parameter_count():
    model = MPPDE(dt=4.0 / 249)  # E1
    assert model.count_parameters() == 634_745 == _official_count(25, 128, 6, 0)
    assert MPPDE(n_params=3, dt=0.1).count_parameters() == 639_737 == _official_count(25, 128, 6, 3)  # E3
    assert model.in_channels == model.out_channels == 25


@pytest.mark.parametrize("hidden,k,expected", [(128, 20, (15, 4, 10)), (128, 25, (16, 3, 14)),
                                               (128, 50, (12, 2, 10))])
def test_official_decoder_geometries(hidden, k, expected):
    assert decoder_geometry(hidden, k) == expected


@pytest.mark.parametrize("hidden,k", [(128, 1), (128, 7), (128, 128), (32, 10), (16, 3)])
def test_generic_decoder_geometry(hidden, k):
    k1, s1, k2 = decoder_geometry(hidden, k)
    assert (hidden - k1) // s1 + 1 - k2 + 1 == k and min(k1, s1, k2) >= 1


def test_decoder_geometry_error():
    with pytest.raises(ValueError, match="1 <= time_window <= hidden"):
        MPPDE(time_window=40, hidden=32, dt=0.1)


def test_output_shape_official_and_batch():
    torch.manual_seed(0)
    model = MPPDE(dt=0.016, periodic=True)
    batch = Batch.from_data_list([_graph(32, 25, 1), _graph(20, 25, 2)])
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (52, 25) and out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("d,n_fields,k,n_params", [(2, 2, 5, 2), (3, 1, 4, 0)])
def test_output_shape_nd_multifield(d, n_fields, k, n_params):
    model = MPPDE(time_window=k, hidden=16, n_layers=2, n_params=n_params, spatial_dims=d, dt=0.1,
                  n_fields=n_fields)
    batch = Batch.from_data_list([_graph(15, k, s, n_params=n_params, d=d, n_fields=n_fields) for s in (3, 4)])
    with torch.no_grad():
        out = model(batch)
    assert out.shape == (30, k * n_fields) and model.in_channels == k * n_fields


def test_permutation_equivariance():
    torch.manual_seed(0)
    model = MPPDE(time_window=5, hidden=32, n_layers=3, n_params=1, spatial_dims=2, dt=0.1)
    data = _graph(40, 5, seed=5, n_params=1, d=2, periodic=False)
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    inv = torch.argsort(perm)  # new index of old node i is inv[i]
    permuted = Data(x=data.x[perm], pos=data.pos[perm], edge_index=inv[data.edge_index], time=data.time,
                    params=data.params)
    with torch.no_grad():
        out, out_p = model(data), model(permuted)
    assert torch.allclose(out_p, out[perm], atol=1e-5, rtol=1e-5)


def test_graphs_in_a_batch_are_independent():
    torch.manual_seed(0)
    model = MPPDE(time_window=5, hidden=32, n_layers=3, n_params=2, dt=0.1, periodic=True)
    g0, g1 = _graph(24, 5, 7, n_params=2), _graph(16, 5, 8, n_params=2)
    g1_changed = _graph(30, 5, 9, n_params=2)
    with torch.no_grad():
        out_a = model(Batch.from_data_list([g0, g1]))[:24]
        out_b = model(Batch.from_data_list([g0, g1_changed]))[:24]
        out_alone = model(g0)
    assert torch.allclose(out_a, out_b, atol=1e-6) and torch.allclose(out_a, out_alone, atol=1e-6)
    assert not torch.allclose(out_a, model(Batch.from_data_list([_graph(24, 5, 10, n_params=2), g1]))[:24])


def test_bundling_update():
    """Eq. 10: zero decoder -> u_k at every future step; constant increment c -> u_k + l dt c."""
    k, dt, n_fields = 6, 0.25, 2
    model = MPPDE(time_window=k, hidden=16, n_layers=2, dt=dt, n_fields=n_fields)
    data = _graph(10, k, seed=11, n_fields=n_fields)
    u_last = data.x.reshape(10, k, n_fields)[:, -1, :]  # (N, F)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.zero_()
        out = model(data).reshape(10, k, n_fields)
        assert torch.equal(out, u_last[:, None, :].expand(10, k, n_fields))
        model.decoder[2].bias.copy_(torch.tensor([1.5, -2.0]))  # d_l = c for every step, per field
        out = model(data).reshape(10, k, n_fields)
    steps = torch.arange(1, k + 1, dtype=torch.float32)[None, :, None]
    expected = u_last[:, None, :] + steps * dt * torch.tensor([1.5, -2.0])
    assert torch.allclose(out, expected, atol=1e-6)


def test_relative_position_periodic_wrap():
    pos_i = torch.tensor([[0.05, 0.9], [0.5, 0.5]])
    pos_j = torch.tensor([[0.95, 0.1], [0.2, 0.6]])
    assert torch.allclose(relative_position(pos_i, pos_j, True), torch.tensor([[0.1, -0.2], [0.3, -0.1]]))
    assert torch.allclose(relative_position(pos_i, pos_j, False), torch.tensor([[-0.9, 0.8], [0.3, -0.1]]))


@pytest.mark.parametrize("periodic", [True, False])
def test_layer_sees_wrapped_relative_positions(periodic):
    """Moving nodes by whole periods leaves a periodic layer unchanged (messages see x_i - x_j only, wrapped),
    not an open one."""
    torch.manual_seed(0)
    layer = PDEMessagePassing(8, 3, spatial_dims=1, n_variables=1, periodic=periodic)
    data = _graph(12, 3, seed=12)
    h, var = torch.randn(12, 8), torch.rand(12, 1)
    shifted = data.pos + torch.randint(-2, 3, data.pos.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = layer(h, data.x, data.pos, var, data.edge_index)
        b = layer(h, data.x, shifted, var, data.edge_index)
    assert torch.allclose(a, b, atol=1e-5) == periodic


def test_layer_mean_aggregation_and_residual():
    """A node without incoming edges gets m_i = 0 and h_i + psi(h_i, 0, theta_i); with two identical incoming
    messages the mean equals one message."""
    torch.manual_seed(0)
    layer = PDEMessagePassing(4, 2, n_variables=1, norm=False)
    h, u, pos, var = torch.randn(3, 4), torch.randn(3, 2), torch.rand(3, 1), torch.rand(3, 1)
    edge_index = torch.tensor([[1], [0]])  # only 1 -> 0
    with torch.no_grad():
        out = layer(h, u, pos, var, edge_index)
        psi0 = layer.update_net(torch.cat((h[2:], torch.zeros(1, 4), var[2:]), -1))
        assert torch.allclose(out[2:], h[2:] + psi0)
        doubled = layer(h, u, pos, var, torch.tensor([[1, 1], [0, 0]]))
    assert torch.allclose(doubled[0], out[0], atol=1e-6)


def test_float32_output_under_bf16_autocast():
    torch.manual_seed(0)
    model = MPPDE(time_window=5, hidden=32, n_layers=2, dt=0.1, periodic=True)
    batch = Batch.from_data_list([_graph(16, 5, 13), _graph(16, 5, 14)])
    with torch.no_grad():
        ref = model(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch)
        assert out.dtype == torch.float32
        assert float((out - ref).abs().max()) < 0.05 * float(ref.abs().max())
        for p in model.decoder.parameters():
            p.zero_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(batch)  # the bundled update is exact in float32: u_k repeated
    assert torch.equal(out, batch.x[:, -1:].expand(32, 5))


def test_training_reduces_loss():
    """Fit the next window of a tiny fixed problem (decaying waves on a ring): the loss must drop a lot."""
    torch.manual_seed(0)
    k, n, dt = 4, 16, 0.1
    x = torch.arange(n) / n
    graphs = []
    for j, (amp, phase) in enumerate([(1.0, 0.0), (0.5, 1.0), (0.8, 2.5)]):
        t = (torch.arange(2 * k) * dt)[None, :]
        traj = amp * torch.exp(-t) * torch.sin(2 * torch.pi * x[:, None] + phase + t)  # (n, 2k)
        graphs.append(Data(x=traj[:, :k], y=traj[:, k:], pos=x[:, None],
                           edge_index=radius_graph(x[:, None], 2.5 / n, periodic_length=1.0),
                           time=torch.tensor([0.3 * j])))
    batch = Batch.from_data_list(graphs)
    model = MPPDE(time_window=k, hidden=32, n_layers=2, dt=dt, periodic=True)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = torch.mean((model(batch) - batch.y) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_input_errors():
    model = MPPDE(time_window=5, hidden=16, n_layers=1, n_params=2, dt=0.1)
    good = _graph(8, 5, 15, n_params=2)
    with pytest.raises(ValueError, match=r"x of shape \(N_nodes, 5\)"):
        model(Data(x=torch.randn(8, 4), pos=good.pos, edge_index=good.edge_index, time=good.time))
    with pytest.raises(ValueError, match="no `params`"):
        model(Data(x=good.x, pos=good.pos, edge_index=good.edge_index, time=good.time))
    with pytest.raises(ValueError, match="pos of shape"):
        model(Data(x=good.x, pos=torch.rand(8, 2), edge_index=good.edge_index, time=good.time, params=good.params))


def test_config_instantiates():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"data": {"n_params": 1, "spatial_dims": 1, "snapshot_dt": 0.016,
                                     "graph": {"periodic": True}}})
    cfg.model = OmegaConf.load(CONF / "model" / "mppde.yaml")
    model = instantiate(cfg.model)
    assert isinstance(model, MPPDE)
    assert (model.time_window, model.hidden, model.n_layers, model.n_params, model.dt, model.periodic) == (
        25, 128, 6, 1, 0.016, True)


def test_message_from_node_terms_equals_the_concatenated_edge_mlp() -> None:
    """The per-node factorisation of phi's first layer computes exactly eq. 8 on concatenated edge features."""
    from operators.layers.pde_message_passing import PDEMessagePassing

    torch.manual_seed(0)
    layer = PDEMessagePassing(16, 5, spatial_dims=2, n_variables=3, periodic=True, norm=False).double()
    n = 12
    h, u = torch.randn(n, 16, dtype=torch.float64), torch.randn(n, 5, dtype=torch.float64)
    pos, var = torch.rand(n, 2, dtype=torch.float64), torch.randn(n, 3, dtype=torch.float64)
    edge_index = torch.randint(0, n, (2, 40))
    j, i = edge_index
    messages = layer.message_reference(h[i], h[j], u[i], u[j], pos[i], pos[j], var[i])
    mean = torch.zeros(n, 16, dtype=torch.float64).index_add_(0, i, messages)
    count = torch.bincount(i, minlength=n).clamp_min(1).unsqueeze(1)
    expected = h + layer.update_net(torch.cat((h, mean / count, var), dim=-1))
    got = layer(h, u, pos, var, edge_index)
    assert torch.allclose(got, expected, atol=1e-12)


def test_grid_tensors_are_refused_with_a_one_line_hint() -> None:
    from operators.mppde import MPPDE

    net = MPPDE(time_window=4, hidden=16, n_layers=1, dt=0.1)
    with pytest.raises(ValueError, match=r"MPPDE needs graph batches .* data.graph=\{radius:3\}"):
        net(torch.zeros(1, 4, 10))
