"""Named things registered once each (experiments, classifier bodies, data sets), looked up with a clear error."""
from __future__ import annotations

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
        """The item called ``name``; an unknown name lists the registered ones (and the likely ones first)."""
        if name not in self:
            known = sorted(self)
            close = [n for n in known if str(name).split("-")[0] in n]
            hint = f" (did you mean {', '.join(close[:4])}?)" if close and close != known else ""
            raise self.error(f"no {self.what} called {name!r}; registered: {', '.join(known)}{hint}")
        return self[name]
