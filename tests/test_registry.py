"""nodelib._impl.registry: one registry for experiments, classifier bodies and data sets."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from nodelib._impl.registry import Registry


@dataclass(frozen=True)
class Item:
    name: str


def test_register_lookup_and_clear_errors():
    things = Registry("thing", error=KeyError)
    assert things.register(Item("mnist-resnet")) == Item("mnist-resnet")
    things.register(Item("mnist-odenet"))
    things.register(Item("ecg-resnet"))
    assert things.lookup("ecg-resnet") == Item("ecg-resnet") and sorted(things) == ["ecg-resnet", "mnist-odenet", "mnist-resnet"]
    with pytest.raises(KeyError, match=r"no thing called 'mnist-odnet'; did you mean mnist-odenet, mnist-resnet\?"):
        things.lookup("mnist-odnet")
    with pytest.raises(KeyError, match=r"no thing called 'zebra'; registered: ecg-resnet, mnist-odenet, mnist-resnet"):
        things.lookup("zebra")  # nothing close: every name
    with pytest.raises(ValueError, match="thing 'ecg-resnet' is registered twice"):
        things.register(Item("ecg-resnet"))
    plain = Registry("data set")
    with pytest.raises(ValueError, match=r"^no data set called 'imagenet'; registered: $"):
        plain.lookup("imagenet")
