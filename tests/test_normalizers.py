"""Tests for operators.normalizers."""

import pytest
import torch
from torch import nn

from operators.normalizers import IdentityNormalizer, UnitGaussianNormalizer


def _data():
    torch.manual_seed(0)
    return 3.0 + 2.0 * torch.randn(64, 2, 8, 8)


def test_fit_pointwise_statistics_like_fno_code():
    x = _data()
    norm = UnitGaussianNormalizer().fit(x)
    assert norm.is_fitted and norm.mean.shape == (1, 2, 8, 8)
    torch.testing.assert_close(norm.mean[0], x.mean(0))
    torch.testing.assert_close(norm.std[0], x.std(0))
    z = norm.encode(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(2, 8, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(2, 8, 8), atol=1e-4, rtol=0)


def test_round_trip():
    x = _data()
    for norm in (UnitGaussianNormalizer().fit(x), UnitGaussianNormalizer(reduce_dims="channel").fit(x),
                 UnitGaussianNormalizer(reduce_dims=(0, 2)).fit(x),
                 IdentityNormalizer().fit(x)):
        torch.testing.assert_close(norm.decode(norm.encode(x[:5])), x[:5], atol=1e-5, rtol=1e-5)
        assert norm(x[:5]).shape == x[:5].shape


def test_channelwise_applies_at_other_resolutions():
    x = _data()
    norm = UnitGaussianNormalizer(reduce_dims="channel").fit(x)
    assert norm.mean.shape == (1, 2, 1, 1)
    torch.testing.assert_close(norm.mean.flatten(), x.mean(dim=(0, 2, 3)))
    assert norm.encode(torch.randn(3, 2, 16, 16)).shape == (3, 2, 16, 16)


def test_state_dict_save_and_load():
    x = _data()
    model = nn.Module()
    model.normalizer = UnitGaussianNormalizer().fit(x)
    model.out_norm = IdentityNormalizer().fit(x)
    sd = model.state_dict()
    assert {"normalizer.mean", "normalizer.std", "normalizer.fitted", "out_norm.fitted"} <= set(sd)

    fresh = nn.Module()
    fresh.normalizer = UnitGaussianNormalizer()
    fresh.out_norm = IdentityNormalizer()
    assert not fresh.normalizer.is_fitted
    fresh.load_state_dict(sd)
    assert fresh.normalizer.is_fitted and fresh.out_norm.is_fitted
    torch.testing.assert_close(fresh.normalizer.encode(x), model.normalizer.encode(x))


def test_unfitted_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        UnitGaussianNormalizer().encode(torch.randn(2, 1, 4))
