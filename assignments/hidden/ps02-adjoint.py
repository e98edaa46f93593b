"""Hidden tests of problem set 2: the end-time gradient, and the discrete adjoint of Euler steps."""
import torch
from spec import Code, assert_close, assert_number, hidden


def autograd_end_time(A, z0, c, T):
    T = torch.tensor(float(T), requires_grad=True)
    (c @ torch.linalg.matrix_exp(A * T) @ z0).backward()
    return T.grad


@hidden("q1_end_time", 1)
def test_damped_rotation(student):
    """A damped rotation and a loss that weighs the two coordinates differently (L = c^T z(T))."""
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    z0, c = torch.tensor([2.0, 0.0]), torch.tensor([1.0, -1.0])
    out = student("end_time_gradient", A, z0, c, 1.5)
    assert_number(out, float(autograd_end_time(A, z0, c, 1.5)), atol=1e-10)


@hidden("q1_end_time", 1)
def test_three_dimensions(student):
    """A 3 x 3 system with no symmetry."""
    torch.manual_seed(3)
    A, z0, c = 0.5 * torch.randn(3, 3), torch.randn(3), torch.randn(3)
    out = student("end_time_gradient", A, z0, c, 0.8)
    assert_number(out, float(autograd_end_time(A, z0, c, 0.8)), atol=1e-10)


@hidden("q1_end_time", 1)
def test_a_zero_dimensional_tensor(student):
    """The result is a 0-dimensional tensor; at T = 0 it is c^T A z0."""
    A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    z0, c = torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0])
    out = student("end_time_gradient", A, z0, c, 0.0)
    assert isinstance(out, torch.Tensor) and out.dim() == 0, f"expected a 0-dimensional tensor, got {out!r}"
    assert_number(out, float(c @ A @ z0), atol=1e-12)


def autograd_adjoint(f, z0, h, n, g):
    z0 = z0.clone().requires_grad_(True)
    z = z0
    for _ in range(n):
        z = z + h * f(z)
    (g @ z).backward()
    return z0.grad


@hidden("q2_discrete_adjoint", 2)
def test_network_field(student):
    """A small network as the field, 20 steps: a_0 equals backpropagation through the steps."""
    field = Code("from nodelib.blocks import MLPField\nnet = MLPField(3, hidden=8).double()\n"
                 "value = lambda z: net(torch.tensor(0.0), z)", seed=0)
    torch.manual_seed(0)
    z0, g = torch.randn(3), torch.randn(3)
    out = student("euler_adjoint", field, z0, 0.05, 20, g)
    assert_close(out, autograd_adjoint(field.value, z0, 0.05, 20, g), atol=1e-10)


@hidden("q2_discrete_adjoint", 1)
def test_linear_field_transposed(student):
    """f(z) = A z with A not symmetric: a_0 = (I + h A^T)^n a_n."""
    field = Code("A = torch.tensor([[0.0, 1.0], [-3.0, -0.5]])\nvalue = lambda z: A @ z")
    g = torch.tensor([1.0, 2.0])
    out = student("euler_adjoint", field, torch.tensor([0.3, -0.2]), 0.1, 7, g)
    A = torch.tensor([[0.0, 1.0], [-3.0, -0.5]])
    assert_close(out, torch.linalg.matrix_power(torch.eye(2) + 0.1 * A.T, 7) @ g, atol=1e-12)
