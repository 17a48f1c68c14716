"""``pertvae-bench``: one console script for the project's commands (the ``python -m`` forms stay).

    pertvae-bench run [flags]        # python -m harness.run: the grid (--dry-run: the grid and its time)
    pertvae-bench report OUT         # python -m harness.report: re-render a run's tables and figures
    pertvae-bench fetch [flags]      # python -m datasets.fetch: download the public L1000, DepMap, GDSC files
    pertvae-bench build [flags]      # python -m datasets.build: build a cube from L1000 + baseline files
    pertvae-bench synth --out CUBE   # python -m datasets.synthetic: a cube with known ground truth
    pertvae-bench info PATH          # python -m harness.info: what a cube or a run holds
    pertvae-bench --version

Each subcommand takes the flags of its module (``pertvae-bench run --help``) and exits with its exit status
(0 ok, 2 bad input, the rest as documented by each module).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

from harness.config import did_you_mean

DIST = "pertvae-bench"
# subcommand -> (module whose main(argv) -> int it runs, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("harness.run", "run the benchmark grid (model x drug x latent x CV split) and report; "
                           "--dry-run prints the grid and a time estimate"),
    "report": ("harness.report", "re-render Table 1, the benchmark table and the figures of a run's OUT"),
    "fetch": ("datasets.fetch", "download the public LINCS L1000, DepMap, GDSC and CCLE files (resumable)"),
    "build": ("datasets.build", "build a data cube (zarr) from L1000 and baseline files, or an AnnData"),
    "synth": ("datasets.synthetic", "write a synthetic cube with known ground truth (demo or paper shape)"),
    "info": ("harness.info", "describe a cube (sizes, drugs, provenance) or a run (fits done and failed by "
                             "model and drug, config, versions)"),
}


def version() -> str:
    """The installed package's version (importlib.metadata)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version(DIST)
    except PackageNotFoundError:
        return "unknown (not installed; pip install -e .)"


def usage() -> str:
    """The top-level help text."""
    width = max(map(len, COMMANDS))
    lines = [f"usage: {DIST} COMMAND [flags]   ({DIST} COMMAND --help for a command's flags)", "",
             "PertVAE benchmark: data, grid runs on Dask, significance tables.", "", "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help     show this help", "  --version      show the version"]
    return "\n".join(lines)


def load_main(module: str) -> Callable[[Sequence[str] | None], int]:
    """``module.main``, imported only now; LookupError naming the module when it is not installed."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            raise LookupError(f"module {module} is not part of this installation (reinstall the package, "
                              f"or update it: pip install -e .)") from None
        raise
    return mod.main


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: sys.argv[1:]) to a subcommand; return its exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(usage(), file=sys.stderr)
        return 2
    head, rest = args[0], args[1:]
    if head in ("-h", "--help"):
        print(usage())
        return 0
    if head == "--version":
        print(f"{DIST} {version()}")
        return 0
    if head not in COMMANDS:
        what = "option" if head.startswith("-") else "command"
        print(f"error: unknown {what} {head!r}{did_you_mean(head, list(COMMANDS))} "
              f"(commands: {', '.join(COMMANDS)}; see {DIST} --help)", file=sys.stderr)
        return 2
    try:
        sub = load_main(COMMANDS[head][0])
    except LookupError as e:
        print(f"error: {DIST} {head}: {e}", file=sys.stderr)
        return 2
    return sub(rest)


if __name__ == "__main__":
    sys.exit(main())
