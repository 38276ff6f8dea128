"""The vChat command line: `python -m core COMMAND ...`.

Exit codes: 0 done, 2 bad input (one clear line on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from core.config import Settings, get_settings
from core.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, VChatError
from core.media.frames import DEFAULT_MAX_PIXELS
from core.media.pipeline import MediaAsset, prepare_media


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see python -m core {self.prog.split()[-1]} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _progress(quiet: bool) -> Callable[[str, float | None, str], None]:
    def report(stage: str, fraction: float | None, message: str) -> None:
        if not quiet and stage != "download":
            sys.stderr.write(f"[{stage}] {message}\n")

    return report


def _prepare(args: argparse.Namespace, settings: Settings) -> MediaAsset:
    if args.source == "-":
        return prepare_media(sys.stdin.buffer, settings, filename=args.filename, progress=_progress(args.quiet))
    return prepare_media(args.source, settings, progress=_progress(args.quiet))


def cmd_fetch(args: argparse.Namespace, settings: Settings) -> int:
    asset = _prepare(args, settings)
    print(asset.model_dump_json(indent=2))
    return EXIT_OK


def cmd_frames(args: argparse.Namespace, settings: Settings) -> int:
    asset = _prepare(args, settings)
    source = asset.frames(settings)
    if args.segments:
        sample = source.sample_weighted(args.n, _parse_segments(args.segments), max_pixels=args.max_pixels)
    elif args.fps:
        sample = source.sample_fps(args.fps, max_frames=args.n, max_pixels=args.max_pixels)
    else:
        sample = source.sample_uniform(args.n, max_pixels=args.max_pixels)
    if args.json:
        print(json.dumps({"sha256": asset.sha256, **sample.describe()}, indent=2))
    else:
        for index, seconds in zip(sample.indices, sample.timestamps, strict=True):
            print(f"{seconds:10.3f}  frame {index}")
    return EXIT_OK


def _parse_segments(text: str) -> list[tuple[float, float]]:
    segments = []
    for part in text.split(","):
        try:
            start, end = (float(x) for x in part.split("-"))
        except ValueError:
            raise VChatError(
                f"Bad segment '{part}'.", "Write segments as START-END seconds, e.g. 10-15,40-42."
            ) from None
        segments.append((start, end))
    return segments


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="vChat: ask questions about videos.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def source_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("source", help="http(s) URL, a path inside the media dir, or - to read the video from stdin")
        sub.add_argument("--filename", help="name of the file read from stdin (for its extension)")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
        return sub

    source_command("fetch", "fetch, check and sanitize a video; print the MediaAsset as JSON")
    frames = source_command("frames", "print the timestamps of sampled frames")
    frames.add_argument("--n", type=int, default=16, help="number of frames (default 16)")
    frames.add_argument("--fps", type=float, help="sample at this rate instead, up to --n frames")
    frames.add_argument("--segments", help="R1.5 weighted sampling inside START-END[,START-END...] seconds")
    frames.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="pixel budget per frame")
    frames.add_argument("--json", action="store_true", help="print JSON")
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "fetch": cmd_fetch,
    "frames": cmd_frames,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        settings = get_settings()
        return COMMANDS[args.command](args, settings)
    except VChatError as exc:
        sys.stderr.write(f"error: {exc.one_line()}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return EXIT_INTERNAL
    except Exception as exc:  # an internal error: say so in one line; details with -v
        logging.getLogger("core").debug("internal error", exc_info=True)
        sys.stderr.write(f"error: internal error ({type(exc).__name__}: {str(exc)[:300]}); rerun with -v for details\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
