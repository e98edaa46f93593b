"""What crosses between the grader's processes: JSON, with tensors as raw bytes. Never pickle.

The student's process (``runner.py``) encodes what a student's function returned; the checker (``checker.py``), a
separate process that never runs student code, decodes it with a whitelist of dtypes and a size cap, so a submission
can hand it only numbers, strings, tensors and containers of them. The same format carries the inputs of the hidden
tests the other way: tensors as bytes, and :class:`Code` for what cannot travel as data (a vector field, a seeded
network), which each side builds itself from the same source.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math

MAX_ELEMENTS = 10_000_000  # per decoded message: more is refused, not allocated
MAX_DEPTH = 8
DTYPES = {"float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool", "complex64",
          "complex128"}


class WireError(ValueError):
    """A message that does not follow the format (a forged or truncated output file)."""


class Code:
    """An input built from source on each side: an expression, or statements that set ``value``.

    The namespace holds ``torch`` and ``math`` (imported by the process itself, never taken from a notebook); with
    ``seed``, ``torch.manual_seed(seed)`` runs first, so a randomly initialised network is the same on both sides.
    """

    def __init__(self, source: str, seed: int | None = None):
        self.source, self.seed = source, seed
        self._value, self._built = None, False

    @property
    def value(self):
        if not self._built:
            import torch

            namespace = {"torch": torch, "math": math}
            if self.seed is not None:
                torch.manual_seed(self.seed)
            try:
                self._value = eval(compile(self.source, "<hidden-test input>", "eval"), namespace)
            except SyntaxError:
                exec(compile(self.source, "<hidden-test input>", "exec"), namespace)
                self._value = namespace["value"]
            self._built = True
        return self._value

    def __call__(self, *args, **kwargs):
        return self.value(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Code({self.source!r}{'' if self.seed is None else f', seed={self.seed}'})"


class Opaque:
    """A returned object of a type that cannot travel (a generator, a module ...): its type and repr only."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return f"<{self.type_name}: {self.text}>"


class StudentError(Exception):
    """The student's function raised (or never ran); the checker re-raises it in the test that called it."""


def _tensor_like(value) -> bool:
    return type(value).__module__.split(".")[0] in ("torch", "numpy") and hasattr(value, "shape") and hasattr(value, "dtype")


def encode(value, args: tuple = (), depth: int = 0):
    """A JSON-able form of ``value``; ``args`` marks a returned object that *is* one of the call's arguments."""
    for index, arg in enumerate(args):
        if value is arg and not isinstance(value, (bool, int, float, str, type(None))):
            return {"t": "arg", "i": index, "value": encode(value, (), depth)}
    if depth > MAX_DEPTH:
        return {"t": "other", "type": type(value).__name__, "repr": "nested too deeply"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return {"t": "int", "v": str(value)} if abs(value) > 2**53 else value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"t": "float", "v": repr(value)}
    if isinstance(value, complex):
        return {"t": "complex", "re": encode(value.real), "im": encode(value.imag)}
    if isinstance(value, Code):
        return {"t": "code", "source": value.source, "seed": value.seed}
    if _tensor_like(value):
        import numpy as np

        is_torch = type(value).__module__.split(".")[0] == "torch"
        array = value
        if is_torch:
            tensor = value.detach().cpu().resolve_conj().resolve_neg()
            if str(tensor.dtype) in ("torch.bfloat16",):
                tensor = tensor.float()
            array = tensor.numpy()
        array = np.array(array, order="C", copy=True)  # (ascontiguousarray makes a 0-d array 1-d)
        if array.dtype.name not in DTYPES:
            return {"t": "other", "type": f"array of {array.dtype}", "repr": repr(value)[:300]}
        return {"t": "tensor" if is_torch else "ndarray", "dtype": array.dtype.name, "shape": list(array.shape),
                "data": base64.b64encode(array.tobytes()).decode("ascii"),
                "requires_grad": bool(getattr(value, "requires_grad", False))}
    if hasattr(value, "item") and hasattr(value, "dtype") and not hasattr(value, "shape"):
        return encode(value.item(), (), depth)  # a numpy scalar
    if isinstance(value, (tuple, list)) or type(value).__name__ == "Size":
        kind = "list" if isinstance(value, list) else "tuple"
        return {"t": kind, "items": [encode(v, (), depth + 1) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"t": "dict", "items": {k: encode(v, (), depth + 1) for k, v in value.items()}}
    try:
        text = repr(value)[:300]
    except Exception:  # a hostile __repr__ is the submission's own problem
        text = "(no repr)"
    return {"t": "other", "type": type(value).__name__, "repr": text}


def encode_error(exc: BaseException, traceback_text: str = "") -> dict:
    return {"t": "error", "type": type(exc).__name__, "message": str(exc)[:2000], "traceback": traceback_text[-4000:]}


class _Budget:
    def __init__(self):
        self.left = MAX_ELEMENTS

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise WireError("the output holds more than 10 million numbers")


def decode(obj, args: tuple | None = None, budget: _Budget | None = None, depth: int = 0, build_code: bool = True):
    """The value an :func:`encode` message stands for; an error message becomes a :class:`StudentError` instance."""
    budget = budget or _Budget()
    if depth > MAX_DEPTH + 2:
        raise WireError("nested too deeply")
    if obj is None or isinstance(obj, (bool, int, float, str)):
        if isinstance(obj, str):
            budget.take(len(obj) // 8)
        return obj
    if isinstance(obj, list):  # plain JSON arrays never come from encode
        raise WireError("unexpected JSON array")
    if not isinstance(obj, dict) or not isinstance(obj.get("t"), str):
        raise WireError(f"unexpected {type(obj).__name__}")
    kind = obj["t"]
    if kind == "int":
        return int(str(obj["v"])[:400])
    if kind == "float":
        if obj.get("v") not in ("nan", "inf", "-inf"):
            raise WireError("bad float")
        return float(obj["v"])
    if kind == "complex":
        return complex(decode(obj["re"], None, budget, depth + 1), decode(obj["im"], None, budget, depth + 1))
    if kind in ("tensor", "ndarray"):
        import numpy as np

        dtype, shape = obj.get("dtype"), obj.get("shape")
        if dtype not in DTYPES or not isinstance(shape, list) or len(shape) > 16 or \
                not all(isinstance(s, int) and s >= 0 for s in shape):
            raise WireError(f"bad array header {dtype} {shape}")
        count = math.prod(shape)
        budget.take(count)
        raw = base64.b64decode(str(obj.get("data", "")), validate=True)
        if len(raw) != count * np.dtype(dtype).itemsize:
            raise WireError("array data of the wrong length")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if kind == "ndarray":
            return array
        import torch

        tensor = torch.from_numpy(array)
        if obj.get("requires_grad") and tensor.is_floating_point():
            tensor.requires_grad_(True)
        return tensor
    if kind in ("tuple", "list"):
        items = obj.get("items")
        if not isinstance(items, list):
            raise WireError("bad sequence")
        budget.take(len(items))
        values = [decode(v, None, budget, depth + 1, build_code) for v in items]
        return values if kind == "list" else tuple(values)
    if kind == "dict":
        items = obj.get("items")
        if not isinstance(items, dict):
            raise WireError("bad dict")
        budget.take(len(items))
        return {str(k): decode(v, None, budget, depth + 1, build_code) for k, v in items.items()}
    if kind == "arg":
        index = obj.get("i")
        if args is not None and isinstance(index, int) and 0 <= index < len(args):
            return args[index]
        return decode(obj.get("value"), None, budget, depth + 1, build_code)
    if kind == "code":
        code = Code(str(obj.get("source", "")), obj.get("seed"))
        return code.value if build_code else code
    if kind == "other":
        return Opaque(str(obj.get("type"))[:100], str(obj.get("repr"))[:300])
    if kind == "error":
        return StudentError(f"{str(obj.get('type'))[:100]}: {str(obj.get('message'))[:2000]}")
    raise WireError(f"unknown kind {kind!r}")


def fingerprint(obj) -> str:
    """A digest of an encoded message (to check that the checker replays the calls the runner made)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
