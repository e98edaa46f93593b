"""Hidden tests of problem set 1: Richardson-extrapolated Euler, and a weight-shared ResNet as Euler's method.

The references are written out here (a plain Euler loop), not taken from nodelib: nodelib's solvers are switched
off while the answers run, as the questions ask for the loop itself.
"""
import torch
from spec import Code, assert_close, forbid, hidden

SOLVERS = ("nodelib.solvers", "nodelib._impl", "nodelib.adjoint", "nodelib.blocks.ODEBlock", "torchdiffeq")
forbid("q1_richardson", *SOLVERS)
forbid("q2_resnet", *SOLVERS)


def euler(f, z0, T, steps):
    h, z = T / steps, z0
    for k in range(steps):
        z = z + h * f(torch.tensor(k * h), z)
    return z


def richardson(f, z0, T, n):
    return 2 * euler(f, z0, T, 2 * n) - euler(f, z0, T, n)


COS_FIELD = "lambda t, z: torch.cos(5 * torch.as_tensor(t, dtype=z.dtype)) * z"


@hidden("q1_richardson", 1)
def test_time_dependent_field(student):
    """A field that depends on time (each Euler step evaluates f at t_k = k h, the first at t = 0)."""
    f = Code(COS_FIELD)
    for n in (4, 7):
        out = student("richardson_euler", f, torch.ones(1), 1.0, n)
        assert_close(out, richardson(f.value, torch.ones(1), 1.0, n), atol=1e-12, what=f"the result for n = {n}")


@hidden("q1_richardson", 1)
def test_exact_for_a_field_linear_in_time(student):
    """dz/dt = t is integrated exactly by the extrapolation, for a state of any shape."""
    out = student("richardson_euler", Code("lambda t, z: t * torch.ones_like(z)"), torch.zeros(2, 3), 2.0, 3)
    assert_close(out, torch.full((2, 3), 2.0), atol=1e-12)


@hidden("q1_richardson", 1)
def test_second_order(student):
    """Doubling n divides the error by about 4 (second order), on dz/dt = -2z."""
    f = Code("lambda t, z: -2 * z")
    errors = []
    for n in (20, 40):
        out = student("richardson_euler", f, torch.tensor([1.0]), 1.0, n)
        assert_close(out, richardson(f.value, torch.tensor([1.0]), 1.0, n), atol=1e-12, what=f"the result for n = {n}")
        errors.append(abs(float(out[0]) - torch.exp(torch.tensor(-2.0)).item()))
    assert 3.5 < errors[0] / errors[1] < 4.5, f"error ratio {errors[0] / errors[1]:.2f}, expected about 4"


NETWORK = "from nodelib.blocks import MLPField\nvalue = MLPField(2, hidden=16, time_input=True).double()"


@hidden("q2_resnet", 1)
def test_time_dependent_network(student):
    """A network that reads the time: block k evaluates the field at t_k = k h, with h = T / N."""
    torch.manual_seed(1)
    z0 = torch.randn(7, 2)
    field = Code(NETWORK, seed=1)
    out = student("shared_resnet", field, z0, 16, 2.0)
    with torch.no_grad():
        reference = euler(field.value, z0, 2.0, 16)
    assert_close(out.detach() if isinstance(out, torch.Tensor) else out, reference, atol=1e-12)


@hidden("q2_resnet", 1)
def test_default_end_time(student):
    """T defaults to 1 (called with three arguments)."""
    out = student("shared_resnet", Code("lambda t, z: -z"), torch.ones(3), 5)
    assert_close(out, torch.full((3,), 0.8**5), atol=1e-12)


@hidden("q2_resnet", 1)
def test_steps_start_at_zero(student):
    """With f = t the blocks add h t_k = h * k h for k = 0 .. N-1."""
    out = student("shared_resnet", Code("lambda t, z: torch.as_tensor(t, dtype=z.dtype) * torch.ones_like(z)"),
                  torch.zeros(2), 6, 3.0)
    assert_close(out, torch.full((2,), 0.5 * 0.5 * 15), atol=1e-12)
