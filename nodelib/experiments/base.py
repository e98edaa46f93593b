"""One kind of experiment: a typed configuration, a run function, a name in the registry.

Every full experiment of the book is an :class:`Experiment`: a frozen dataclass instance holding every setting
the run uses (its *configuration*), and ``run(config, context)`` which trains or measures, writes
``context.out / "result.json"`` atomically (with the configuration, the command, the machine and the code
revision) and returns the result. The command line (``python -m nodelib.experiments``) is derived from the
configuration's dataclass: each field is an option of ``run NAME`` (``--batch-size 64``, ``--milestones 60,100``,
``--solver '{"method": "rk4"}'``, ``--no-augment``), so there is no option a run ignores and no setting that only
a log remembers. :func:`config_parser` builds that parser and :func:`apply_options` the configuration it
describes; :class:`Context` holds what is not a setting of the experiment (where to write, the device, the data
root, resume, progress).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

__all__ = ["Context", "Experiment", "config_to_dict", "config_parser", "apply_options", "option_name", "SMOKE_NOTE"]

#: What a smoke run's numbers mean: nothing (printed after it and written into a classifier's result).
SMOKE_NOTE = ("a smoke run checks that the code runs end to end (data, model, training, evaluation, checkpoints, "
              "result file) in seconds; its losses and accuracies are not results: a few optimiser steps on a few "
              "dozen images, with BatchNorm's running statistics (which evaluation uses) still far from "
              "the batches' own, so evaluation losses can be huge and training losses can rise")


@dataclass(frozen=True)
class Context:
    """Where and how a run happens (nothing here changes what it computes).

    Attributes:
        out: the run's folder (``OUT/NAME``, or ``OUT/NAME-smoke`` for a smoke run); ``result.json`` goes there.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (None: the best available).
        data_dir: the data root (None: ``$NODELIB_DATA``, else ``./data``).
        download: let loaders fetch missing files (needs the internet).
        resume: continue from the checkpoints in ``out``.
        progress: show progress bars.
        smoke: a seconds-long run of the smoke configuration.
        workers: data-loader worker processes (image data sets).
        command: the command line that started the run (recorded in the result).
    """

    out: Path
    device: Optional[str] = None
    data_dir: Optional[Path] = None
    download: bool = False
    resume: bool = False
    progress: bool = True
    smoke: bool = False
    workers: int = 0
    command: str = ""

    @property
    def result_path(self) -> Path:
        return Path(self.out) / "result.json"


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its name, chapter, what it is, where its settings come from, its configuration,
    how to run it, and the changes that make a smoke run (seconds on a CPU)."""

    name: str
    chapter: int
    description: str
    source: str
    config: Any
    run: Callable[[Any, Context], dict[str, Any]]
    smoke: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config) or isinstance(self.config, type):
            raise TypeError(f"experiment {self.name}: config must be a dataclass instance")
        names = {f.name for f in dataclasses.fields(self.config)}
        unknown = sorted(set(self.smoke) - names)
        if unknown:
            raise ValueError(f"experiment {self.name}: the smoke changes name unknown settings {unknown}")

    @property
    def kind(self) -> str:
        return type(self.config).__name__

    def configuration(self, smoke: bool = False, **changes: Any) -> Any:
        """The configuration a run uses: the registered one, with the smoke changes, then ``changes``."""
        return dataclasses.replace(self.config, **{**(dict(self.smoke) if smoke else {}), **changes})

    def to_dict(self, smoke: bool = False) -> dict[str, Any]:
        """What ``show NAME`` prints: the experiment and the configuration that will run."""
        config = self.configuration(smoke)
        described = config.describe() if hasattr(config, "describe") else config_to_dict(config)
        return {"name": self.name, "chapter": self.chapter, "kind": self.kind, "description": self.description,
                "source": self.source, "config": described, "smoke changes": dict(self.smoke)}


def config_to_dict(config: Any) -> dict[str, Any]:
    """A configuration as JSON-ready data (tuples become lists, paths strings)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)  # type: ignore[no-any-return]


# --- the command line, from the dataclass -----------------------------------------------------------------------

def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return args[0], True
    return hint, False


def _parse_sequence(item: type, text: str) -> tuple[Any, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return tuple(item(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {item.__name__} values, got {text!r}") from None


def _parse_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"method\": \"rk4\"}}', got {text!r} "
                                         f"({err.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _converter(hint: Any) -> tuple[Callable[[str], Any], Optional[tuple[Any, ...]], str]:
    """(parse one option's text, its choices, the metavar) for a field's type."""
    hint, optional = _unwrap_optional(hint)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        kind = type(choices[0])
        return kind, choices, "{" + ",".join(map(str, choices)) + "}"
    if origin in (tuple, list) or hint in (tuple, list):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis] or [str]
        item = args[0]
        return (lambda text: _parse_sequence(item, text)), None, f"{item.__name__.upper()},..."
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return _parse_json, None, "JSON"
    if hint in (int, float, str, Path):
        def convert(text: str, kind: Any = hint) -> Any:
            if optional and text.lower() == "none":
                return None
            return kind(text)

        return convert, None, hint.__name__.upper()
    raise TypeError(f"no command-line option for a setting of type {hint!r}")


def config_parser(config: Any, prog: str, description: str = "",
                  common: Optional[Callable[[argparse.ArgumentParser], None]] = None) -> argparse.ArgumentParser:
    """An argparse parser with one option per field of ``config``'s dataclass (default: the registered value,
    shown in the help) plus the ``common`` options; a bad option prints this parser's usage."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    group = parser.add_argument_group("settings of this experiment (default: the registered configuration)")
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if not f.init or f.metadata.get("cli") is False:
            continue
        current = getattr(config, f.name)
        help_text = f.metadata.get("help", "")
        hint, _ = _unwrap_optional(hints[f.name])
        if hint is bool:
            group.add_argument(option_name(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=f"{help_text} (registered: {current})")
            continue
        convert, choices, metavar = _converter(hints[f.name])
        shown = ",".join(map(str, current)) if isinstance(current, tuple) else json.dumps(current) if isinstance(
            current, dict) else current
        group.add_argument(option_name(f.name), dest=f.name, type=convert, choices=choices, default=argparse.SUPPRESS,
                           metavar=metavar if choices is None else None,
                           help=f"{help_text} (registered: {shown})".strip())
    if common is not None:
        common(parser)
    return parser


def apply_options(config: Any, options: argparse.Namespace) -> Any:
    """``config`` with the fields the command line set (the others keep the registered value)."""
    given = vars(options)
    changes = {f.name: given[f.name] for f in dataclasses.fields(config) if f.name in given}
    return dataclasses.replace(config, **changes) if changes else config
