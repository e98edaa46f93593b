"""Hidden tests of problem set 3: a least-squares linear field, and training windows."""
import torch
from spec import assert_close, hidden


def trapezoid_fit(t, z):
    dz = (z[1:] - z[:-1]) / (t[1:] - t[:-1])[:, None]
    return torch.linalg.lstsq((z[1:] + z[:-1]) / 2, dz).solution.T


def samples(A, z0, n, t_max, seed):
    from nodelib.data import irregular_times, linear_trajectory

    t = irregular_times(n, t_max, seed=seed).double()
    return t, linear_trajectory(A, z0, t)


@hidden("q1_least_squares", 1)
def test_eigenvalues_of_a_spiral(student):
    """400 irregular samples of a damped spiral: the fitted field has its eigenvalues (within 0.05)."""
    from nodelib.data import A_CAPELL

    t, z = samples(A_CAPELL, torch.tensor([2.0, 0.0]), 400, 10.0, 0)
    found = student("fit_linear_field", t, z)
    assert isinstance(found, torch.Tensor) and found.shape == (2, 2), f"expected a 2 x 2 tensor, got {found!r}"
    true, got = torch.linalg.eigvals(A_CAPELL), torch.linalg.eigvals(found)
    assert (got.imag.abs().sort().values - true.imag.abs().sort().values).abs().max() < 0.05, "wrong frequencies"
    assert (got.real - true.real).abs().max() < 0.05, "wrong decay rates"


@hidden("q1_least_squares", 1)
def test_the_matrix_itself(student):
    """The matrix A (not its transpose) of the trapezoid least-squares problem, for a field with no symmetry."""
    A = torch.tensor([[-0.3, 1.5], [-0.4, -0.2]])
    t, z = samples(A, torch.tensor([1.0, 0.5]), 60, 6.0, 1)
    assert_close(student("fit_linear_field", t, z), trapezoid_fit(t, z), atol=1e-8)


@hidden("q1_least_squares", 1)
def test_three_dimensions(student):
    """A three-dimensional system sampled at 40 irregular times."""
    torch.manual_seed(2)
    A = 0.4 * torch.randn(3, 3) - 0.3 * torch.eye(3)
    t, z = samples(A, torch.tensor([1.0, -1.0, 0.5]), 40, 4.0, 2)
    assert_close(student("fit_linear_field", t, z), trapezoid_fit(t, z), atol=1e-8)


@hidden("q2_windows", 1)
def test_small(student):
    """Windows of 3 rows of a 6 x 2 series, in order of their first sample."""
    z = torch.arange(12.0).reshape(6, 2)
    assert_close(student("all_windows", z, 3), torch.stack([z[i:i + 3] for i in range(4)]), atol=0)


@hidden("q2_windows", 1)
def test_one_window_of_full_length(student):
    """A window as long as the series: exactly one, the series itself."""
    z = torch.arange(15.0).reshape(5, 3)
    assert_close(student("all_windows", z, 5), z[None], atol=0)


@hidden("q2_windows", 1)
def test_length_one(student):
    """Windows of one row: shape (n, 1, d)."""
    torch.manual_seed(0)
    z = torch.randn(7, 4)
    assert_close(student("all_windows", z, 1), z[:, None], atol=0)
