"""The loss terms of Johnson et al. as pure functions: definitions, zeros, a known image."""

from __future__ import annotations

import pytest
import torch

from stylenet.losses import content_loss, gram_matrix, pixel_loss, style_loss, total_variation


def test_gram_matrix_matches_naive_loop() -> None:
    torch.manual_seed(0)
    f = torch.randn(2, 3, 4, 5)
    b, c, h, w = f.shape
    expected = torch.zeros(b, c, c)
    for n in range(b):
        for i in range(c):
            for j in range(c):
                total = 0.0
                for y in range(h):
                    for x in range(w):
                        total += float(f[n, i, y, x] * f[n, j, y, x])
                expected[n, i, j] = total / (c * h * w)
    torch.testing.assert_close(gram_matrix(f), expected, rtol=1e-5, atol=1e-6)


def test_losses_are_zero_for_identical_inputs() -> None:
    x = torch.rand(2, 8, 6, 6)
    g = gram_matrix(x)
    assert content_loss(x, x.clone()) == 0
    assert style_loss(g, g.clone()) == 0
    assert pixel_loss(x, x.clone()) == 0
    assert total_variation(torch.full((1, 3, 5, 5), 0.3)) == 0


def test_losses_match_their_definitions() -> None:
    x, y = torch.zeros(2, 4, 3, 3), torch.full((2, 4, 3, 3), 0.5)
    assert content_loss(x, y).item() == pytest.approx(0.25)  # mean of 0.5²
    g1, g2 = torch.zeros(2, 3, 3), torch.ones(1, 3, 3)
    assert style_loss(g1, g2).item() == pytest.approx(9.0)  # squared Frobenius, batch mean


def test_total_variation_on_known_image() -> None:
    # Vertical stripes 0,1,0,1: every horizontal neighbour differs by 1, vertical ones by 0.
    img = torch.tensor([0.0, 1.0, 0.0, 1.0]).repeat(1, 3, 4, 1)  # (1, 3, 4, 4)
    assert total_variation(img).item() == pytest.approx(1.0)
    # A ramp 0, .25, .5, .75 down the rows: vertical steps of .25, horizontal 0.
    ramp = torch.linspace(0, 0.75, 4).view(1, 1, 4, 1).expand(1, 3, 4, 4)
    assert total_variation(ramp).item() == pytest.approx(0.0625)
