"""The batched preconditioned CG (datasets/pdes/batched_cg.py) on dense SPD systems with known solutions."""
from __future__ import annotations

import pytest
import torch

from datasets.pdes.batched_cg import batched_pcg


def _spd_batch(b: int, n: int, conditions: list[float]) -> torch.Tensor:
    """(b, n, n) SPD matrices with the given condition numbers (random orthogonal eigenvectors)."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(b, n, n, generator=g, dtype=torch.float64))
    eig = torch.stack([torch.logspace(0, torch.log10(torch.tensor(c)).item(), n, dtype=torch.float64)
                       for c in conditions])
    return q @ torch.diag_embed(eig) @ q.transpose(1, 2)


def test_solves_each_sample_and_stops_each_on_its_own() -> None:
    a = _spd_batch(3, 40, [1.0, 1e2, 1e4])  # sample 0 (identity spectrum) converges in one iteration
    x_true = torch.randn(3, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    b = (a @ x_true[..., None])[..., 0]
    apply_a = lambda v: (a @ v[..., None])[..., 0]  # noqa: E731
    for check_every in (1, 7):
        x, iterations = batched_pcg(apply_a, b, lambda r: r, tol=1e-12, max_iter=400, check_every=check_every)
        # error <= cond (1e4) x tol (1e-12) x |x| plus round-off
        assert torch.allclose(x, x_true, rtol=0, atol=1e-6 * float(x_true.abs().max()))
        residual = (apply_a(x) - b).flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)
        assert bool((residual <= 1e-12 * 1.0001).all()), residual
        assert int(iterations[0]) == 1 and int(iterations[1]) < int(iterations[2]) < 400  # harder spectra take longer
        if check_every == 1:
            reference = iterations
        else:  # frozen samples do not move: the result does not depend on how often convergence is looked at
            assert torch.equal(iterations, reference)


def test_a_good_preconditioner_cuts_the_iterations() -> None:
    a = _spd_batch(2, 60, [1e5, 1e5])
    b = torch.ones(2, 60, dtype=torch.float64)
    apply_a = lambda v: (a @ v[..., None])[..., 0]  # noqa: E731
    inv = torch.linalg.inv(a + 1e-3 * torch.eye(60, dtype=torch.float64))  # nearly exact M^-1, in float32
    _, plain = batched_pcg(apply_a, b, lambda r: r, tol=1e-10, max_iter=2000)
    x, pre = batched_pcg(apply_a, b, lambda r: (inv.float() @ r.float()[..., None])[..., 0], tol=1e-10,
                         max_iter=2000)
    assert int(pre.max()) * 5 < int(plain.min())
    assert torch.allclose(apply_a(x), b, atol=1e-8)


def test_not_converging_raises_one_line_naming_the_solver() -> None:
    a = _spd_batch(1, 50, [1e6])
    apply_a = lambda v: (a @ v[..., None])[..., 0]  # noqa: E731
    with pytest.raises(RuntimeError, match=r"^Test-CG did not converge in 3 iterations .*> tol=1e-12\); try x$"):
        batched_pcg(apply_a, torch.ones(1, 50, dtype=torch.float64), lambda r: r, tol=1e-12, max_iter=3,
                    name="Test-CG", hint="; try x")
    with pytest.raises(ValueError, match="check_every=0 is not allowed"):
        batched_pcg(apply_a, torch.ones(1, 50, dtype=torch.float64), lambda r: r, tol=1e-6, max_iter=3,
                    check_every=0)
