"""``python -m motionedit.cluster slurm-profile [--dest DIR] [--force]``: write the
Snakemake profile of the Slurm cluster this runs on, so ``snakemake --profile slurm``
works as typed.

Exit status: 0 when the profile was written or is up to date, 1 when a different profile
is already there and was kept (its difference is printed), 2 when the cluster cannot be
read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from motionedit.cluster.slurm_facts import ClusterError, read_facts
from motionedit.cluster.slurm_profile import (
    EXAMPLE,
    EXAMPLE_HEADER,
    default_dest,
    install,
    render,
    todos,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m motionedit.cluster")
    commands = parser.add_subparsers(dest="command", required=True)
    profile = commands.add_parser(
        "slurm-profile",
        help="write the Snakemake profile of this Slurm cluster",
        description="Reads sinfo, scontrol and sacctmgr and writes a Snakemake profile "
        "with this cluster's partitions, GPU model, job-status command and account.",
    )
    profile.add_argument(
        "--dest",
        type=Path,
        default=None,
        help=f"profile folder (default {default_dest()}, where `--profile slurm` looks)",
    )
    profile.add_argument(
        "--force", action="store_true", help="replace a different profile (kept as .bak)"
    )
    profile.add_argument(
        "--example",
        action="store_true",
        help="write the example cluster's profile (the repository's profiles/slurm)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    dest = args.dest or default_dest()
    if args.example:
        text, left = render(EXAMPLE, EXAMPLE_HEADER), []
    else:
        try:
            facts = read_facts()
        except ClusterError as exc:
            print(f"slurm-profile: {exc}", file=sys.stderr)
            return 2
        text, left = render(facts), todos(facts)
    written = install(dest, text, force=args.force)
    if written.status == "kept":
        print(written.diff, end="")
        print(
            f"{written.path} differs from what the cluster says now (above) and was kept;"
            " edit it, or run again with --force to replace it (the old one is kept as"
            f" {written.path.name}.bak)."
        )
        return 1
    print(f"{written.path}: {written.status}")
    if written.status == "replaced":
        print(f"the previous profile is {written.path}.bak")
    for todo in left:
        print(f"TODO: {todo}")
    name = "slurm" if dest == default_dest() else str(dest)
    print(f"run: snakemake --profile {name} --configfile <your config>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
