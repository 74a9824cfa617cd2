"""MP-PDE solver (Brandstetter, Worrall & Welling, "Message Passing Neural PDE Solvers", ICLR 2022): an
encode-process-decode graph network with temporal bundling, for fields sampled at (possibly irregular) points.

Architecture (``K`` = ``time_window``, ``H`` = ``hidden``, one graph per sample, ``theta = (t/T, params)``)::

    node input [u_{k-K+1..k} (K F), x/L (d), t/T (1), params (P)]
        --> encoder  epsilon: Linear -> Swish -> Linear -> Swish                      (N, H)
        --> n_layers x PDEMessagePassing (eqs. 8-9: messages phi(h_i, h_j, u_i - u_j, x_i - x_j, theta_i),
            mean aggregation, h_i + psi(h_i, m_i, theta_i), instance norm per graph)
        --> decoder  delta: 1-D CNN over the embedding as a length-H signal:
            Conv1d(1, 8, k1, stride s1) -> Swish -> Conv1d(8, F, k2)                 (N, F, K) increments d_l
        --> u_{k+l} = u_k + (l dt) d_l,   l = 1..K                                   (eq. 10, temporal bundling)

As the official code, the time ``t/T`` is one of the "equation variables" ``theta`` that every message and update
sees (besides being an encoder input); the positions enter the encoder absolutely and the messages relatively.

E1 configuration (``time_window=25, hidden=128, n_layers=6, n_params=0, spatial_dims=1``): 634,745 parameters,
the count of the official ``MP_PDE_Solver`` (paper: "about 0.63M"): encoder 20,096, six layers of 102,400
(message 36,352 + 16,512, update 33,024 + 16,512; instance norm none), decoder 136 + 113.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from operators.layers.channel_mlp import get_activation
from operators.layers.pde_message_passing import PDEMessagePassing
from operators.layers.precision import autocast_disabled, full_precision_dtype

# decoder geometries (k1, s1, k2) of the official code for H = 128
_OFFICIAL_DECODER = {(128, 20): (15, 4, 10), (128, 25): (16, 3, 14), (128, 50): (12, 2, 10)}


def decoder_geometry(hidden: int, time_window: int) -> tuple[int, int, int]:
    """Kernel / stride ``(k1, s1, k2)`` of the decoder CNN ``Conv1d(1, 8, k1, stride=s1) -> Conv1d(8, F, k2)`` that
    maps a length-``hidden`` embedding to ``time_window`` outputs: ``(hidden - k1) // s1 + 1 - k2 + 1 = K``.

    The official geometries for ``hidden = 128`` and ``K in {20, 25, 50}``; otherwise stride
    ``s1 = max(1, H // 2K)``, an intermediate length ``L1 = min(ceil(3K/2), (H - 1) // s1 + 1)``,
    ``k1 = H - s1 (L1 - 1)``, ``k2 = L1 - K + 1``. Raises ``ValueError`` for ``K > H``.
    """
    h, k = int(hidden), int(time_window)
    if (h, k) in _OFFICIAL_DECODER:
        return _OFFICIAL_DECODER[(h, k)]
    if not 1 <= k <= h:
        raise ValueError(f"MPPDE: the decoder CNN maps the hidden={h} embedding to time_window={k} steps, which "
                         f"needs 1 <= time_window <= hidden")
    s1 = max(1, h // (2 * k))
    l1 = min((3 * k + 1) // 2, (h - 1) // s1 + 1)
    k1 = h - s1 * (l1 - 1)
    k2 = l1 - k + 1
    return k1, s1, k2


class MPPDE(nn.Module):
    """MP-PDE solver: one call maps the last ``K`` snapshots at every node to the next ``K`` (temporal bundling).

    Args:
        time_window: ``K``, snapshots in and out per call (paper: 25).
        hidden: embedding width ``H`` (paper: 128).
        n_layers: processor (message passing) layers (paper: 6).
        n_params: ``P``, PDE parameters per graph fed to encoder, messages and updates (E1: 0, E2: 1, E3: 3);
            scale them to ``O(1)`` in the data (the official code divides by the parameters' maxima).
            With ``n_params=0`` a batch's ``params`` are ignored (the paper's parameter ablation).
        spatial_dims: ``d``, dimension of ``pos``.
        dt: snapshot spacing of the data (physical time units), the ``dt`` of the bundled update
            ``u_{k+l} = u_k + l dt d_l``.
        periodic: the domain is periodic: relative positions ``x_i - x_j`` are wrapped to the minimum image of
            the unit box (``pos`` is ``x / L``); use with graphs whose edges wrap around.
        n_fields: ``F``, fields per node (time-major channels, channel ``l F + f`` = field ``f`` at step ``l``).
        activation: activation of all MLPs and the decoder (Swish = ``"silu"`` in the paper).

    Input: a PyG ``Data`` / ``Batch`` (``N`` nodes, ``B`` graphs) with
        ``x`` ``(N, K F)`` the last ``K`` snapshots (oldest first), ``pos`` ``(N, d)`` positions scaled to
        ``[0, 1]``, ``time`` ``(B,)`` the time of the first predicted snapshot over the horizon ``T`` (as the official code), ``params``
        ``(B, P)`` (may be absent for ``P = 0``), ``edge_index`` ``(2, E)`` (``[source j; target i]``) and
        ``batch`` ``(N,)`` (absent for one graph).

    Output:
        ``(N, K F)`` the next ``K`` snapshots, time-major; in full precision (float32 for float32 input) also
        under ``torch.autocast``: the decoder and the bundled update run outside autocast
        (:mod:`operators.layers.precision`).

    ``in_channels == out_channels == K F`` (the steps per call times the fields).
    """

    def __init__(
        self,
        time_window: int = 25,
        hidden: int = 128,
        n_layers: int = 6,
        n_params: int = 0,
        spatial_dims: int = 1,
        *,
        dt: float,
        periodic: bool = False,
        n_fields: int = 1,
        activation: str | nn.Module | None = "silu",
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"MPPDE needs n_layers >= 1; got {n_layers}")
        if not float(dt) > 0:
            raise ValueError(f"MPPDE needs the snapshot spacing dt > 0; got {dt}")
        self.time_window = int(time_window)
        self.hidden = int(hidden)
        self.n_layers = int(n_layers)
        self.n_params = int(n_params)
        self.spatial_dims = int(spatial_dims)
        self.dt = float(dt)
        self.periodic = bool(periodic)
        self.n_fields = int(n_fields)
        self.in_channels = self.out_channels = self.time_window * self.n_fields
        self.n_variables = 1 + self.n_params  # theta = (t/T, params)
        k1, s1, k2 = decoder_geometry(self.hidden, self.time_window)

        enc_in = self.in_channels + self.spatial_dims + self.n_variables
        self.encoder = nn.Sequential(
            nn.Linear(enc_in, self.hidden), get_activation(activation),
            nn.Linear(self.hidden, self.hidden), get_activation(activation),
        )
        self.processor = nn.ModuleList(
            PDEMessagePassing(self.hidden, self.in_channels, spatial_dims=self.spatial_dims,
                              n_variables=self.n_variables, periodic=self.periodic, activation=activation)
            for _ in range(self.n_layers)
        )
        self.decoder = nn.Sequential(
            nn.Conv1d(1, 8, k1, stride=s1), get_activation(activation), nn.Conv1d(8, self.n_fields, k2),
        )
        # l dt for l = 1..K (eq. 10)
        self.register_buffer("step_times", self.dt * torch.arange(1, self.time_window + 1, dtype=torch.float32),
                             persistent=False)

    def count_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _graph_inputs(self, data) -> tuple[torch.Tensor, ...]:
        """``u (N, KF)``, ``pos (N, d)``, ``variables (N, 1 + P)``, ``edge_index``, ``batch (N,)`` of ``data``."""
        if isinstance(data, torch.Tensor):
            raise ValueError(f"MPPDE needs graph batches (PyG Data / Batch), got a grid tensor of shape "
                             f"{tuple(data.shape)}; serve the data as graphs: data.graph={{radius:3}}")
        u, pos, edge_index = data.x, data.pos, data.edge_index
        if u is None or u.dim() != 2 or u.shape[1] != self.in_channels:
            raise ValueError(f"MPPDE expects x of shape (N_nodes, {self.in_channels}) (time_window "
                             f"{self.time_window} x {self.n_fields} fields); got "
                             f"{None if u is None else tuple(u.shape)}")
        n = u.shape[0]
        if pos is None or tuple(pos.shape) != (n, self.spatial_dims):
            raise ValueError(f"MPPDE expects pos of shape ({n}, {self.spatial_dims}); got "
                             f"{None if pos is None else tuple(pos.shape)}")
        if edge_index is None:
            raise ValueError("MPPDE needs the graph's edge_index")
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=u.device)
        time = getattr(data, "time", None)
        if time is None:
            raise ValueError("MPPDE needs `time` (B,): the time of the last input step over the horizon T")
        time = torch.as_tensor(time, device=u.device).reshape(-1, 1).to(u.dtype)
        variables = [time]
        if self.n_params:
            params = getattr(data, "params", None)
            if params is None:
                raise ValueError(f"MPPDE was built with n_params={self.n_params} but the batch has no `params`")
            params = torch.as_tensor(params, device=u.device).reshape(-1, self.n_params).to(u.dtype)
            if params.shape[0] != time.shape[0]:
                raise ValueError(f"MPPDE: `params` has {params.shape[0]} rows for {time.shape[0]} graphs")
            variables.append(params)
        variables = torch.cat(variables, dim=1)[batch]  # graph-level theta on every node
        return u, pos.to(u.dtype), variables, edge_index, batch

    @staticmethod
    def _num_graphs(data) -> int:
        """Graphs in ``data`` without a device sync (one ``time`` entry per graph)."""
        return int(torch.as_tensor(data.time).numel())

    def forward(self, data) -> torch.Tensor:
        """Next ``K`` snapshots ``(N, K F)`` from the last ``K`` ``data.x`` ``(N, K F)``; see the class docstring."""
        u, pos, variables, edge_index, batch = self._graph_inputs(data)
        n = u.shape[0]
        num_graphs = self._num_graphs(data)
        h = self.encoder(torch.cat((u, pos, variables), dim=-1))  # encoder epsilon (Sec. 2.2)
        for layer in self.processor:  # processor: eqs. 8-9
            h = layer(h, u, pos, variables, edge_index, batch, num_graphs=num_graphs)
        dtype = full_precision_dtype(u, h, self.decoder[0].weight)
        with autocast_disabled(h):
            w1, w2 = self.decoder[0], self.decoder[2]
            z = F.conv1d(h.to(dtype)[:, None, :], w1.weight.to(dtype), w1.bias.to(dtype), stride=w1.stride)
            d = F.conv1d(self.decoder[1](z), w2.weight.to(dtype), w2.bias.to(dtype))  # (N, F, K) increments
            u_last = u.to(dtype).reshape(n, self.time_window, self.n_fields)[:, -1, :]  # u_k (N, F)
            # eq. 10 (temporal bundling): u_{k+l} = u_k + (l dt) d_l, l = 1..K
            out = u_last[:, :, None] + self.step_times.to(dtype) * d
            return out.transpose(1, 2).reshape(n, self.out_channels)  # time-major (N, K F)
