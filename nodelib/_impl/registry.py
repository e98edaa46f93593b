"""Named things registered once each (experiments, classifier bodies, data sets), looked up with a clear error."""
from __future__ import annotations

import difflib
from typing import Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


class Registry(dict[str, T]):
    """A dict from names to items that have a ``name``; :meth:`lookup` says what is known when a name is not.

    Args:
        what: what the items are, for messages ("experiment", "classifier body", "data set").
        error: the exception type an unknown name raises.
    """

    def __init__(self, what: str, error: type[Exception] = ValueError) -> None:
        super().__init__()
        self.what, self.error = what, error

    def register(self, item: T) -> T:
        name = item.name
        if name in self:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self[name] = item
        return item

    def lookup(self, name: str) -> T:
        """The item called ``name``; an unknown name suggests the closest registered ones (else lists them all)."""
        if name not in self:
            close = difflib.get_close_matches(str(name), list(self), n=4, cutoff=0.6)
            if close:
                raise self.error(f"no {self.what} called {name!r}; did you mean {', '.join(close)}?")
            raise self.error(f"no {self.what} called {name!r}; registered: {', '.join(sorted(self))}")
        return self[name]
