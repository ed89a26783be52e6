"""`ftpfusion` command line: one entry point, one module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``; it is imported only
when chosen so that `ftpfusion --help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

SUBCOMMANDS: dict[str, str] = {
    "fuse": "fuse IR/visible frame folders, MP4 pairs or a rosbag into fused frames",
    "bench": "measure parameters, FLOPs, ms per streamed frame and peak memory of a model",
    "demo": "fuse the synthetic dual-camera scene and write demo outputs",
    "eval": "score models (or fused frames made elsewhere) with spatial and temporal metrics",
    "extract": "extract a synchronised IR/visible dataset from a rosbag",
    "bag": "fuse a rosbag offline into a new bag with the fused topics added",
    "train": "train a fusion model from a YAML config",
    "export": "export a model to TorchScript/ONNX",
    "calibrate": "estimate the IR->visible registration (homography) from scenes or a heated target",
}


def _module(name: str):
    return importlib.import_module(f"ftpfusion_ros.cli.{name}_cmd")


def available_commands() -> list[str]:
    return [n for n in SUBCOMMANDS if importlib.util.find_spec(f"ftpfusion_ros.cli.{n}_cmd") is not None]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Build only the chosen subcommand's parser in full (its imports may be heavy).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    names = available_commands()
    if chosen in names:
        parser = argparse.ArgumentParser(prog="ftpfusion")
        sub = parser.add_subparsers(dest="command", required=True)
        sp = sub.add_parser(chosen, help=SUBCOMMANDS[chosen], description=SUBCOMMANDS[chosen])
        _module(chosen).add_arguments(sp)
    else:
        parser = argparse.ArgumentParser(prog="ftpfusion", description="Infrared/visible video fusion tools.")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        for name in names:
            sub.add_parser(name, help=SUBCOMMANDS[name])
    args = parser.parse_args(argv)
    try:
        return int(_module(args.command).run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError, RuntimeError) as exc:
        # Expected user errors get one clear line, not a traceback: bad values, and paths that cannot
        # be read or created (an --out that is a file, a folder without write permission, a full disk)
        print(f"ftpfusion {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"ftpfusion {args.command}: error: out of memory (frame size, batch or window too large "
              "for this machine)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
