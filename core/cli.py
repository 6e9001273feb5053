"""The `msm4sr` command line: thin wrappers over the core modules.

Each section module adds its subcommands with `add_commands(subparsers)`; heavy
imports (torch, open_clip) happen inside the commands, so `msm4sr info` is quick.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from core.errors import StudioError

SECTIONS = ("core.cli_import", "core.cli_catalog", "core.cli_features", "core.cli_model",
            "core.cli_recommend", "core.cli_explore")


def cmd_info(args) -> int:
    from core.workspace import Workspace
    from core import status
    with Workspace.open(args.workspace) as ws:
        info = status.workspace_info(ws)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(status.format_info(info))
    return 0


class _Version(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        from core.versions import format_versions, versions
        print(format_versions(versions()))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msm4sr", description="MSM4SR Studio command line")
    parser.add_argument("--version", action=_Version, nargs=0,
                        help="package, torch, device and default feature models, then exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("info", help="counts, time range, feature and model status of a workspace")
    p.add_argument("workspace")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)
    for name in SECTIONS:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except StudioError as e:
        print(f"msm4sr: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `msm4sr ... | head`: the reader has gone, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("msm4sr: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
