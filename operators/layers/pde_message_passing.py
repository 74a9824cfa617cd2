"""The MP-PDE processor layer (Brandstetter, Worrall & Welling, "Message Passing Neural PDE Solvers", ICLR 2022,
Sec. 2.2, eqs. 8-9): a :class:`torch_geometric.nn.MessagePassing` layer on node embeddings ``h`` that also sees the
raw input window ``u``, the node positions ``x`` and the equation variables ``theta`` (time and PDE parameters).

For every edge ``j -> i`` (``edge_index[0] = j``, ``edge_index[1] = i``)::

    m_ij  = phi(h_i, h_j, u_i - u_j, x_i - x_j, theta_i)            (eq. 8, 2-layer MLP, Swish after each layer)
    m_i   = mean_{j in N(i)} m_ij
    h_i' = h_i + psi(h_i, m_i, theta_i)                                (eq. 9, 2-layer MLP, Swish after each layer)
    h_i' <- InstanceNorm(h')   per graph (over the nodes of each graph of the batch)

A node without incoming edges gets ``m_i = 0``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.norm import InstanceNorm

from operators.layers.channel_mlp import get_activation


def relative_position(pos_i: torch.Tensor, pos_j: torch.Tensor, periodic: bool) -> torch.Tensor:
    """``x_i - x_j`` ``(E, d)`` for positions in the unit box; with ``periodic`` wrapped to the minimum image
    ``[-1/2, 1/2]`` (the box ``[0, 1)^d`` is a torus)."""
    rel = pos_i - pos_j
    if periodic:
        rel = rel - torch.round(rel)
    return rel


class PDEMessagePassing(MessagePassing):
    """One MP-PDE processor layer (eqs. 8-9 of the paper, residual update, per-graph instance norm).

    Args:
        hidden: width ``H`` of the node embeddings (input and output).
        u_channels: channels ``C_u`` of the raw node input ``u`` (the time window times the fields).
        spatial_dims: dimension ``d`` of the positions.
        n_variables: ``V`` equation variables per node (the official code: time plus the PDE parameters).
        periodic: wrap ``x_i - x_j`` to the minimum image in the unit box.
        activation: the MLPs' activation (Swish = SiLU in the paper).
        norm: apply the per-graph instance norm after the update (paper: yes).

    Shapes (``N`` nodes, ``E`` edges, ``B`` graphs):
        ``h`` ``(N, H)``, ``u`` ``(N, C_u)``, ``pos`` ``(N, d)``, ``variables`` ``(N, V)``, ``edge_index``
        ``(2, E)``, ``batch`` ``(N,)`` or ``None`` (one graph) ``-> (N, H)``.

    Parameters: ``phi``: ``(2H + C_u + d + V) H + H + H^2 + H``; ``psi``: ``(2H + V) H + H + H^2 + H``; the
    instance norm has none (no affine, no running statistics, as PyG's default used by the paper code).
    """

    def __init__(
        self,
        hidden: int,
        u_channels: int,
        spatial_dims: int = 1,
        n_variables: int = 1,
        periodic: bool = False,
        activation: str | nn.Module | None = "silu",
        norm: bool = True,
    ) -> None:
        super().__init__(aggr="mean", node_dim=0)
        self.hidden = int(hidden)
        self.u_channels = int(u_channels)
        self.spatial_dims = int(spatial_dims)
        self.n_variables = int(n_variables)
        self.periodic = bool(periodic)
        msg_in = 2 * self.hidden + self.u_channels + self.spatial_dims + self.n_variables
        self.message_net = nn.Sequential(
            nn.Linear(msg_in, self.hidden), get_activation(activation),
            nn.Linear(self.hidden, self.hidden), get_activation(activation),
        )
        self.update_net = nn.Sequential(
            nn.Linear(2 * self.hidden + self.n_variables, self.hidden), get_activation(activation),
            nn.Linear(self.hidden, self.hidden), get_activation(activation),
        )
        self.norm = InstanceNorm(self.hidden) if norm else None
        # column blocks of phi's first layer: h_i, h_j, u_i - u_j, x_i - x_j, theta_i
        self._message_split = (self.hidden, self.hidden, self.u_channels, self.spatial_dims, self.n_variables)

    def extra_repr(self) -> str:
        return (f"hidden={self.hidden}, u_channels={self.u_channels}, spatial_dims={self.spatial_dims}, "
                f"n_variables={self.n_variables}, periodic={self.periodic}")

    def forward(
        self,
        h: torch.Tensor,
        u: torch.Tensor,
        pos: torch.Tensor,
        variables: torch.Tensor,
        edge_index: torch.Tensor,
        batch: torch.Tensor | None = None,
        num_graphs: int | None = None,
    ) -> torch.Tensor:
        """``(N, H) -> (N, H)``; see the class docstring for the other inputs. ``num_graphs`` (the number of
        graphs in ``batch``) spares the norm a device-to-host ``batch.max()`` per call (and ``torch.compile`` a
        graph break)."""
        # phi's first layer is linear in the concatenation [h_i, h_j, u_i - u_j, x_i - x_j, theta_i], so its node
        # terms are computed once per node and gathered per edge (exactly the same map, ~6x fewer FLOPs for that
        # layer): W [h_i; h_j; u_i - u_j; r_ij; theta_i] + b = (W_hi h_i + W_u u_i + W_t theta_i + b)
        #                                                    + (W_hj h_j - W_u u_j) + W_r r_ij
        first = self.message_net[0]
        w_hi, w_hj, w_u, w_r, w_t = torch.split(first.weight, self._message_split, dim=1)
        target_part = torch.addmm(first.bias, h, w_hi.T) + u @ w_u.T + variables @ w_t.T
        source_part = h @ w_hj.T - u @ w_u.T
        out = self.propagate(edge_index, h=h, variables=variables, target_part=target_part,
                             source_part=source_part, pos=pos, w_r=w_r, size=(h.shape[0], h.shape[0]))
        if self.norm is not None:
            out = self.norm(out, batch, num_graphs)
        return out

    def message(self, target_part_i: torch.Tensor, source_part_j: torch.Tensor, pos_i: torch.Tensor,
                pos_j: torch.Tensor, w_r: torch.Tensor) -> torch.Tensor:
        """Eq. 8: ``m_ij = phi(h_i, h_j, u_i - u_j, x_i - x_j, theta_i)``, ``(E, H)`` (first layer from the node
        terms, see :meth:`forward`)."""
        rel = relative_position(pos_i, pos_j, self.periodic)
        first = target_part_i + source_part_j + rel @ w_r.T
        return self.message_net[2:](self.message_net[1](first))

    def message_reference(self, h_i: torch.Tensor, h_j: torch.Tensor, u_i: torch.Tensor, u_j: torch.Tensor,
                          pos_i: torch.Tensor, pos_j: torch.Tensor, variables_i: torch.Tensor) -> torch.Tensor:
        """Eq. 8 written out on the concatenated edge features (what :meth:`message` computes; for tests)."""
        rel = relative_position(pos_i, pos_j, self.periodic)
        return self.message_net(torch.cat((h_i, h_j, u_i - u_j, rel, variables_i), dim=-1))

    def update(self, aggr_out: torch.Tensor, h: torch.Tensor, variables: torch.Tensor) -> torch.Tensor:
        """Eq. 9: ``h_i + psi(h_i, m_i, theta_i)`` with ``m_i`` the mean message, ``(N, H)``."""
        return h + self.update_net(torch.cat((h, aggr_out, variables), dim=-1))
