"""``python -m nodelib.experiments``: list, show and run the registered full experiments.

    python -m nodelib.experiments list
    python -m nodelib.experiments show mnist-odenet
    python -m nodelib.experiments run mnist-odenet --smoke
    python -m nodelib.experiments run mnist-odenet --device cuda --data-dir data --download
    python -m nodelib.experiments run anodev2-compare --seeds 0,1,2,3,4 --epochs 60 --help
    torchrun --nproc_per_node 4 -m nodelib.experiments run cifar10-odenet --data-dir data
    python -m nodelib.experiments merge mnist5k-ace-compare part1 part2 --out runs

Every setting of an experiment is an option of ``run NAME`` (``run NAME --help`` lists them with their registered
values); the other options say where and how it runs. Results go to ``OUT/NAME/`` (``OUT/NAME-smoke/`` for a
smoke run, emptied first). A comparison run in parts (``run NAME --seeds 0,1 --out part1`` here, ``--seeds 2,3,4
--out part2`` there, from one commit) is joined by ``merge NAME part1 part2 --out OUT`` into ``OUT/NAME/``, with the
parts' run folders (:func:`nodelib.sweep.merge` says what it checks).
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from .. import datasets
from ..errors import RunError
from . import registry
from .base import SMOKE_NOTE, Context, apply_options, config_parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nodelib.experiments",
        description="The book's full experiments: registered configurations, run with checkpoints, resume and DDP.",
        epilog="Results go to OUT/NAME/. Several GPUs: torchrun --nproc_per_node K -m nodelib.experiments run NAME",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,show,run,merge}")
    listing = commands.add_parser("list", help="the registered experiments, one line each")
    listing.add_argument("--chapter", type=int, default=None, help="only this chapter's")
    show = commands.add_parser("show", help="the configuration that will run, as JSON")
    show.add_argument("name")
    show.add_argument("--smoke", action="store_true", help="the smoke run's configuration")
    run = commands.add_parser("run", help="run one experiment (run NAME --help: its settings)", add_help=False)
    run.add_argument("name", nargs="?")
    run.add_argument("rest", nargs=argparse.REMAINDER)
    merge = commands.add_parser("merge", help="join a comparison run in parts into OUT/NAME")
    merge.add_argument("name", help="the registered comparison the parts ran (e.g. mnist5k-ace-compare)")
    merge.add_argument("parts", nargs="+", type=Path, help="the --out folders of the parts (each holds NAME/)")
    merge.add_argument("--out", type=Path, required=True, help="the merged result goes to OUT/NAME (must not exist)")
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where and how it runs")
    where.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    where.add_argument("--data-dir", type=Path, default=None,
                       help="where the data sets are (default: $NODELIB_DATA, else ./data)")
    where.add_argument("--download", action="store_true", help="let loaders download missing data sets")
    where.add_argument("--out", type=Path, default=Path("runs"), help="results go to OUT/NAME (default: ./runs)")
    where.add_argument("--resume", action="store_true", help="continue from the checkpoints in OUT/NAME")
    where.add_argument("--fresh", action="store_true", help="start over, deleting OUT/NAME")
    where.add_argument("--smoke", action="store_true", help="a seconds-long run (tests, CPU)")
    where.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    where.add_argument("--no-progress", action="store_true", help="no progress bars")


def _list(chapter: Optional[int]) -> None:
    chosen = [e for e in registry.REGISTRY.values() if chapter is None or e.chapter == chapter]
    rows = [(e.name, str(e.chapter), e.description) for e in sorted(chosen, key=lambda e: (e.chapter, e.name))]
    width = max((len(r[0]) for r in rows), default=4)
    print(f"{'name':<{width}}  ch  description")
    for name, number, text in rows:
        print(f"{name:<{width}}  {number:>2}  {text}")


def _error(message: str) -> SystemExit:
    print(f"python -m nodelib.experiments: error: {message}", file=sys.stderr)
    return SystemExit(2)


def _lookup(name: str) -> registry.Experiment:
    if name not in registry.REGISTRY:
        close = difflib.get_close_matches(name, list(registry.REGISTRY), n=4, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `python -m nodelib.experiments list` names them"
        raise _error(f"no experiment called {name!r}{hint}")
    return registry.get(name)


def _command_line(argv: Optional[list[str]]) -> str:
    words = sys.argv[1:] if argv is None else argv
    prefix = "torchrun ... -m nodelib.experiments" if int(os.environ.get("WORLD_SIZE", "1")) > 1 \
        else "python -m nodelib.experiments"
    return " ".join([prefix, *words])


def _merge(name: str, parts: list[Path], out: Path, command: str) -> Path:
    """Join the parts' NAME/result.json into OUT/NAME/result.json and copy their run folders and checkpoints."""
    from ..sweep import merge

    experiment = _lookup(name)
    folders = [p / name if (p / name / "result.json").exists() else p for p in parts]
    for folder in folders:
        if not (folder / "result.json").exists():
            raise _error(f"{folder} holds no result.json of {name} (pass the --out folder a part ran with)")
    target = out / name
    if target.exists() and any(target.iterdir()):
        raise _error(f"{target} exists; merge into a new folder")
    declared = getattr(experiment.configuration(), "variants", None)
    try:
        recorded = [json.loads((f / "result.json").read_text()) for f in folders]
        ran = {str(r[recorded[0].get("by", "variant")]) for part in recorded for r in part["runs"]}
        order = [v for v in declared if v in ran] if declared and ran <= set(declared) else None
        owner: dict[str, Path] = {}
        for folder in folders:
            for path in folder.iterdir():
                if path.name != "result.json" and path.name in owner:
                    raise RunError(f"{path.name} is in both {owner[path.name]} and {folder}")
                owner[path.name] = folder
        target.mkdir(parents=True, exist_ok=True)
        merge(recorded, target / "result.json", variants=order, command=command)
    except RunError as exc:
        if target.exists() and not any(target.iterdir()):
            target.rmdir()
        raise _error(str(exc)) from None
    for entry, folder in owner.items():
        if entry != "result.json":
            source = folder / entry
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, target / entry)
    return target / "result.json"


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "merge":
        path = _merge(args.name, args.parts, args.out, _command_line(argv))
        print(f"{args.name}: {len(args.parts)} parts merged into {path}")
        return 0
    if args.command == "list":
        _list(args.chapter)
        return 0
    if args.command == "show":
        print(json.dumps(registry.describe(_lookup(args.name), args.smoke), indent=2, default=str))
        return 0
    if args.name is None or args.name in ("-h", "--help"):
        print("usage: python -m nodelib.experiments run NAME [settings] [options]\n"
              "`python -m nodelib.experiments list` names the experiments; `run NAME --help` lists a NAME's settings")
        return 0 if args.name else 2
    experiment = _lookup(args.name)
    parser = config_parser(experiment.config, f"python -m nodelib.experiments run {experiment.name}",
                           f"{experiment.description}. Source: {experiment.source}.", common=_common)
    options = parser.parse_args(args.rest)
    if options.resume and options.fresh:
        parser.error("--resume and --fresh contradict each other; pass one")
    try:
        config = apply_options(experiment.configuration(options.smoke), options)
    except (RunError, ValueError, TypeError) as exc:
        parser.error(str(exc))
    folder = options.out / (experiment.name + ("-smoke" if options.smoke else ""))
    if (options.fresh or options.smoke) and folder.exists() and int(os.environ.get("RANK", "0")) == 0:
        shutil.rmtree(folder)  # a smoke run overwrites its own folder, never the full run's
    ctx = Context(out=folder, device=options.device, data_dir=datasets.data_root(options.data_dir),
                  download=options.download, resume=options.resume, progress=not options.no_progress,
                  smoke=options.smoke, workers=options.workers, command=_command_line(argv))
    if folder.exists() and not options.resume and any(folder.iterdir()):
        parser.error(f"{folder} holds an earlier run; pass --resume to continue it or --fresh to start over")
    try:
        experiment.run(config, ctx)
    except (RunError, FileNotFoundError, ImportError) as exc:
        raise _error(str(exc)) from None
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{experiment.name}: results in {ctx.result_path}")
        if options.smoke:
            print(f"{experiment.name}: {SMOKE_NOTE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
