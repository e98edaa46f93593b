"""``python -m nodelib.experiments``: list, show and run the registered full experiments.

    python -m nodelib.experiments list
    python -m nodelib.experiments show mnist-odenet
    python -m nodelib.experiments run mnist-odenet --smoke
    python -m nodelib.experiments run mnist-odenet --device cuda --data-dir data --download
    torchrun --nproc_per_node 4 -m nodelib.experiments run cifar10-odenet --data-dir data
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Optional

from .. import datasets
from . import registry


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nodelib.experiments",
        description="The book's full experiments: registered configurations, run with checkpoints, resume and DDP.",
        epilog="Results go to OUT/NAME/ (result.json, checkpoint.pt, curves.png). Several GPUs: "
               "torchrun --nproc_per_node K -m nodelib.experiments run NAME ...",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,show,run}")
    commands.add_parser("list", help="the registered experiments, one line each")
    show = commands.add_parser("show", help="one experiment's configuration as JSON")
    show.add_argument("name")
    run = commands.add_parser("run", help="run one experiment", description="Run a registered experiment.")
    run.add_argument("name", help="an experiment name from `list`")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: the best available)")
    run.add_argument("--epochs", type=int, default=None, help="number of epochs (default: the registered schedule)")
    run.add_argument("--batch-size", type=int, default=None, help="global mini-batch size over all processes")
    run.add_argument("--lr", type=float, default=None, help="learning rate (default: the registered one)")
    run.add_argument("--seed", type=int, default=0, help="seeds initialisation, data order and generated data")
    run.add_argument("--data", choices=("real", "synthetic"), default="real",
                     help="the real data set, or generated data of the same shapes (no download)")
    run.add_argument("--data-dir", type=Path, default=None,
                     help="where the data sets are (default: $NODELIB_DATA, else ./data)")
    run.add_argument("--download", action="store_true", help="let torchvision download missing image data sets")
    run.add_argument("--out", type=Path, default=Path("runs"), help="where results go (default: ./runs)")
    run.add_argument("--resume", action="store_true", help="continue from OUT/NAME/checkpoint.pt")
    run.add_argument("--fresh", action="store_true", help="start over even if OUT/NAME/checkpoint.pt exists")
    run.add_argument("--smoke", action="store_true", help="a seconds-long run on small generated data (tests, CPU)")
    run.add_argument("--n-train", type=int, default=None, help="size of the generated training set (synthetic data)")
    run.add_argument("--n-test", type=int, default=None, help="size of the generated test set (synthetic data)")
    run.add_argument("--workers", type=int, default=0, help="data-loader worker processes for image data sets")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _list() -> None:
    rows = [(e.name, str(e.chapter), e.kind, e.description) for e in sorted(registry.REGISTRY.values(), key=lambda e: (e.chapter, e.name))]
    width = max(len(r[0]) for r in rows)
    print(f"{'name':<{width}}  ch  kind        description")
    for name, chapter, kind, text in rows:
        print(f"{name:<{width}}  {chapter:>2}  {kind:<10}  {text}")


def _run_script(experiment: registry.ScriptExperiment, args: argparse.Namespace) -> int:
    resume = args.resume and not experiment.takes_resume  # flags this script does not take
    download = args.download and not experiment.takes_data
    not_taken = [flag for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--lr", args.lr),
                                          ("--resume", resume), ("--n-train", args.n_train), ("--n-test", args.n_test),
                                          ("--download", download), ("--data synthetic", args.data == "synthetic"))
                 if value not in (None, False)]
    if not_taken:
        raise registry_error(f"{experiment.name} has its own options and does not take {', '.join(not_taken)}; "
                             f"see python -m nodelib.experiments.{experiment.module} --help")
    out = args.out / _folder_name(experiment.name, args.smoke) / "result.json"
    argv = ["--out", str(out)] + (["--device", args.device] if args.device else [])
    if experiment.takes_seed:
        argv += ["--seed", str(args.seed)]
    argv += list(experiment.args)
    if experiment.takes_data:
        argv += ["--data-dir", str(datasets.data_root(args.data_dir))] + (["--download"] if args.download else [])
    if experiment.takes_resume and args.resume:
        argv.append("--resume")
    if args.smoke:
        argv += list(experiment.smoke_args)
    module = importlib.import_module(f"nodelib.experiments.{experiment.module}")
    return module.main(argv)


def _folder_name(name: str, smoke: bool) -> str:
    """Where a run writes under --out: smoke runs in a folder of their own, never in the full run's way."""
    return name + ("-smoke" if smoke else "")


def _command_line(argv: Optional[list[str]]) -> str:
    words = sys.argv[1:] if argv is None else argv
    prefix = "torchrun ... -m nodelib.experiments" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else "python -m nodelib.experiments"
    return " ".join([prefix, *words])


def registry_error(message: str) -> SystemExit:
    print(f"python -m nodelib.experiments: error: {message}", file=sys.stderr)
    return SystemExit(2)


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        _list()
        return 0
    try:
        experiment = registry.get(args.name)
    except KeyError as exc:
        raise registry_error(exc.args[0]) from None
    if args.command == "show":
        print(json.dumps(registry.describe(experiment), indent=2))
        return 0
    if args.resume and args.fresh:
        raise registry_error("--resume and --fresh contradict each other; pass one")
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--n-train", args.n_train),
                        ("--n-test", args.n_test)):
        if value is not None and value < 1:
            raise registry_error(f"{flag} must be >= 1, got {value}")
    if isinstance(experiment, registry.ScriptExperiment):
        return _run_script(experiment, args)
    from .runner import RunError, RunOptions, run_classifier

    options = RunOptions(device=args.device, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         data=args.data, data_dir=datasets.data_root(args.data_dir), out=args.out, resume=args.resume, fresh=args.fresh,
                         smoke=args.smoke, download=args.download, workers=args.workers,
                         progress=not args.no_progress, n_train=args.n_train, n_test=args.n_test,
                         command=_command_line(argv))
    try:
        result = run_classifier(experiment, options)
    except (RunError, FileNotFoundError, ImportError) as exc:
        raise registry_error(str(exc)) from None
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{experiment.name}: test accuracy {result['epochs'][-1]['test_accuracy']:.4f} after "
              f"{len(result['epochs'])} epochs; results in {args.out / _folder_name(experiment.name, args.smoke)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
