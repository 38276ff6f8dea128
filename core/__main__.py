"""The vChat command line: `python -m core COMMAND ...`.

Exit codes: 0 done, 2 bad input (one clear line on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel, ValidationError

from core.analysis.flows import model_names
from core.config import Settings, get_settings
from core.errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, InputError, VChatError, validation_message
from core.jobs.cli import add_commands as add_batch_commands
from core.media.pipeline import InspectedMedia, MediaAsset, inspect_media, prepare_media
from core.media.sampling import DEFAULT_MAX_PIXELS, MAX_FRAMES, check_frame_count
from core.media.scratch import sweep_stale
from core.models.base import AnalysisRequest, GenerationSettings


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


class StderrProgress:
    """Progress on stderr, one line per stage message; a round's generated text is counted on one
    line that is rewritten (\r) and ended before anything else is written."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.open_line = False
        self.last_stream = {"round": 0, "at": 0.0}

    def line(self, text: str) -> None:
        if self.open_line:
            sys.stderr.write("\n")
            self.open_line = False
        sys.stderr.write(f"{text}\n")

    def stage(self, stage: str, message: str, fraction: float | None) -> None:
        """A ProgressFn: download and token counts are too frequent for lines of their own."""
        if not self.quiet and stage not in ("download", "round", "frames"):
            self.line(f"[{stage}] {message}")

    def stream(self, number: int, text: str) -> None:
        now = time.monotonic()
        last = self.last_stream
        if number != last["round"] or now - last["at"] > 0.5:
            if number != last["round"] and self.open_line:
                self.line("")
            sys.stderr.write(f"\r[round {number}] {len(text)} characters generated")
            self.open_line = True
            last.update({"round": number, "at": now})

    def close(self) -> None:
        if self.open_line:
            sys.stderr.write("\n")
            self.open_line = False


def _source(args: argparse.Namespace) -> str | BinaryIO:
    return sys.stdin.buffer if args.source == "-" else args.source


def _prepare(args: argparse.Namespace, settings: Settings) -> MediaAsset:
    progress = StderrProgress(args.quiet)
    return prepare_media(_source(args), settings, filename=args.filename, progress=progress.stage)


def cmd_inspect(args: argparse.Namespace, settings: Settings) -> int:
    """What a fact-checker reads before any model: source, provenance and probe (no sanitize, no model)."""
    progress = StderrProgress(args.quiet)
    inspected: InspectedMedia = inspect_media(_source(args), settings, filename=args.filename, progress=progress.stage)
    print(inspected.model_dump_json(indent=2))
    return EXIT_OK


def cmd_fetch(args: argparse.Namespace, settings: Settings) -> int:
    asset = _prepare(args, settings)
    print(asset.model_dump_json(indent=2))
    return EXIT_OK


def cmd_frames(args: argparse.Namespace, settings: Settings) -> int:
    """The frames a round shows: `--n` as a 1-round analysis with that budget sees them, `--segments`
    as the next round sees them after that glue (the official sampler, see core/media/sampling.py)."""
    key_time = _parse_segments(args.segments) if args.segments else None
    check_frame_count(args.n)  # before any fetching
    asset = _prepare(args, settings)
    source = asset.frames(settings)
    plan = source.plan(frames=args.n, fps=args.fps, key_time=key_time)
    sample = source.sample(plan, max_pixels=args.max_pixels)
    if args.json:
        print(json.dumps({"sha256": asset.sha256, **sample.describe()}, indent=2))
    else:
        for index, seconds in zip(sample.indices, sample.timestamps, strict=True):
            print(f"{seconds:10.3f}  frame {index}")
    if not args.quiet:
        for note in sample.notes:
            sys.stderr.write(f"note: {note}\n")
        if sample.substituted:
            from core.analysis.perception import damaged_frames_note

            sys.stderr.write(f"note: {damaged_frames_note(sample)}\n")
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from core.analysis.runner import run_analysis

    request = request_from(args, args.question)  # everything cheap is checked before media or a model
    # The Gemini key comes from GEMINI_API_KEY only: a key on the command line ends up in shell history.
    model_path = Path(args.model_path) if args.model_path else None
    progress = StderrProgress(args.quiet or args.json)
    # The same flow as the app: stored results are served unless --rerun.
    try:
        run = run_analysis(
            _source(args),
            settings,
            args.model,
            request,
            filename=args.filename,
            model_path=model_path,
            rerun=args.rerun,
            gemini_reads_url=args.no_download,
            on_stage=progress.stage,
            on_text=None if progress.quiet else progress.stream,
        )
    finally:
        progress.close()
    result = run.result
    if run.from_store and not args.quiet:
        sys.stderr.write(f"note: served from the result stored at {run.stored_at} (--rerun asks again)\n")
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        for record in result.rounds:
            spans = ", ".join(f"{s.start_s:.1f}-{s.end_s:.1f} s" for s in record.segments) or "none"
            sys.stderr.write(f"round {record.round}: {record.sampling}, segments: {spans}\n")
        for note in result.notes:
            sys.stderr.write(f"note: {note}\n")
        if result.gemini:
            usage = result.gemini
            sys.stderr.write(
                f"gemini: {usage.model}, video {usage.path_taken or 'not sent'}, {usage.attempts} request(s), "
                f"{usage.total_tokens} tokens\n"
            )
        print(result.answer)
    return EXIT_OK


def cmd_factcheck(args: argparse.Namespace, settings: Settings) -> int:
    """A fact-check report: evidence measured without a model, three checks by the chosen engines."""
    from core.analysis.factcheck.flow import measure_only, run_factcheck
    from core.analysis.factcheck.html import write_html
    from core.analysis.factcheck.text import evidence_text, report_text

    request = request_from(args, "fact-check")  # the checks ask their own questions
    html = Path(args.html) if args.html else None
    if html is not None and args.measure_only:
        raise InputError("--html writes a whole report; --measure-only makes none.", "Leave out one of the two.")
    if html is not None and not html.parent.is_dir():
        raise InputError(f"The folder of {html} does not exist.", "Give --html a path in an existing folder.")
    progress = StderrProgress(args.quiet or args.json)
    if args.measure_only:
        try:
            measured = measure_only(_source(args), settings, filename=args.filename, on_stage=progress.stage)
        finally:
            progress.close()
        evidence = measured.evidence
        print(evidence.model_dump_json(indent=2) if args.json else evidence_text(measured.asset, evidence))
        return EXIT_OK
    try:
        run = run_factcheck(
            _source(args),
            settings,
            args.model,
            request,
            filename=args.filename,
            model_path=Path(args.model_path) if args.model_path else None,
            rerun=args.rerun,
            on_stage=progress.stage,
        )
    finally:
        progress.close()
    if run.from_store and not args.quiet:
        sys.stderr.write(f"note: the report stored at {run.report.created_at} (--rerun checks again)\n")
    if html is not None:
        write_html(run.stored, html)
        if not args.quiet:
            sys.stderr.write(f"wrote {html}\n")
    print(run.report.model_dump_json(indent=2) if args.json else report_text(run.report, run.stored.rating))
    return EXIT_OK


def cmd_digest(args: argparse.Namespace, settings: Settings) -> int:
    from core.analysis.digest import get_digest
    from core.models.gemini.client import GeminiClient

    GeminiClient(settings, model=args.gemini_model)  # a missing key or a bad model name: before any fetch
    asset = _prepare(args, settings)
    record = get_digest(asset, settings, model=args.gemini_model, refresh=args.refresh)
    if record.reused and not args.quiet:
        sys.stderr.write(f"note: the digest stored at {record.created_at} (--refresh asks Gemini again)\n")
    if args.json:
        print(record.model_dump_json(indent=2))
        return EXIT_OK
    digest = record.digest
    print(digest.summary.strip())
    sections = [
        ("Scenes", [f"{s.start_s:7.1f}-{s.end_s:.1f} s  {s.description}" for s in digest.scenes]),
        ("Speech", [f"{t.start_s:7.1f} s  {t.speaker}: {t.text}" for t in digest.transcript]),
        ("On-screen text", [f"{t.start_s:7.1f} s  {t.text}" for t in digest.on_screen_text]),
        ("Claims", [f"{c.start_s:7.1f} s  {c.speaker}: {c.claim}" for c in digest.claims]),
        ("Audio", [f"{a.start_s:7.1f}-{a.end_s:.1f} s  {a.kind}: {a.note}" for a in digest.audio_notes]),
    ]
    for title, lines in sections:
        print(f"\n{title}:" + ("" if lines else " none"))
        for line in lines:
            print(f"  {line}")
    for note in record.notes:
        sys.stderr.write(f"note: {note}\n")
    return EXIT_OK


def cmd_tiny_model(args: argparse.Namespace, settings: Settings) -> int:
    from core.models.registry import check_installed

    check_installed("local")  # it writes the local model's architecture: transformers and torch
    from core.models.local.tiny import write_tiny_model

    target = Path(args.directory)
    if target.exists() and any(target.iterdir()):
        raise VChatError(f"{target} exists and is not empty.", "Choose a new folder; nothing is overwritten.")
    write_tiny_model(target)
    print(target)
    return EXIT_OK


def _parse_segments(text: str) -> list[tuple[float, float]]:
    segments = []
    for part in text.split(","):
        try:
            start, end = (float(x) for x in part.split("-"))
        except ValueError:
            raise InputError(
                f"Bad segment '{part}'.", "Write segments as START-END seconds, e.g. 10-15,40-42."
            ) from None
        if end <= start:
            raise InputError(f"Segment '{part}' ends before it starts.", "Write START-END with START before END.")
        segments.append((start, end))
    return segments


def _default(model: type[BaseModel], name: str) -> object:
    return model.model_fields[name].default


def add_model_options(sub: argparse.ArgumentParser) -> None:
    """The model and request options every command that asks a model takes (defaults from the request)."""
    sub.add_argument("--model", default="local", help=f"one of {', '.join(model_names())} (default local)")
    sub.add_argument("--gemini-model", help="Gemini model name (default gemini-flash-latest); key: GEMINI_API_KEY")
    sub.add_argument("--model-path", help="folder of a Qwen2.5-VL / VideoChat-R1.5 checkpoint")
    sub.add_argument("--adapter", help="a LoRA adapter's name in the adapters folder (python -m finetune)")
    rounds, frames = _default(AnalysisRequest, "rounds"), _default(AnalysisRequest, "frames")
    sub.add_argument("--rounds", type=int, default=rounds, help=f"perception rounds, 1..5 (default {rounds})")
    sub.add_argument("--frames", type=int, default=frames, help=f"frames per round, 1..{MAX_FRAMES} (default {frames})")
    sub.add_argument("--fps", type=float, help="sample at this rate (up to --frames) instead of a fixed count")
    pixels = _default(AnalysisRequest, "max_pixels")
    sub.add_argument("--max-pixels", type=int, default=pixels, help=f"pixel budget per frame (default {pixels})")
    for name, help_text in (
        ("max_new_tokens", "tokens generated per round"),
        ("temperature", "0 = greedy"),
        ("top_p", "nucleus sampling (with --temperature > 0)"),
        ("repetition_penalty", "penalty on repeated tokens"),
    ):
        value = _default(GenerationSettings, name)
        kind = int if isinstance(value, int) else float
        sub.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value, help=f"{help_text} (default {value})")


def request_from(args: argparse.Namespace, question: str) -> AnalysisRequest:
    """The request the model options describe (InputError on a bad value)."""
    generation = {name: getattr(args, name) for name in GenerationSettings.model_fields}
    return AnalysisRequest(
        question=question,
        rounds=args.rounds,
        frames=args.frames,
        fps=args.fps,
        max_pixels=args.max_pixels,
        generation=GenerationSettings(**generation),
        gemini_model=args.gemini_model,
        adapter=args.adapter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vchat", description="vChat: ask questions about videos (also: python -m core).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def source_command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("source", help="http(s) URL, a path inside the media dir, or - to read the video from stdin")
        sub.add_argument("--filename", help="name of the file read from stdin (for its extension)")
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
        return sub

    source_command("fetch", "fetch, check and sanitize a video; print the MediaAsset as JSON")
    source_command("inspect", "fetch and check a video; print its source, provenance and probe as JSON (no model)")
    frames = source_command("frames", "print the timestamps of sampled frames")
    frames.add_argument(
        "--n", type=int, default=16, help=f"frames of a 1-round analysis with this budget, 1..{MAX_FRAMES} (default 16)"
    )
    frames.add_argument("--fps", type=float, help="sample at this rate instead, up to --n frames")
    frames.add_argument(
        "--segments", help="the next round's frames after this glue: START-END[,START-END...] seconds (1.5x inside)"
    )
    frames.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="pixel budget per frame")
    frames.add_argument("--json", action="store_true", help="print JSON")
    analyze = source_command("analyze", "ask a question about a video")
    analyze.add_argument("--question", "-Q", required=True, help="what you want to know")
    add_model_options(analyze)
    analyze.add_argument(
        "--no-download", action="store_true", help="with --model gemini: pass a public YouTube URL to Gemini as is"
    )
    analyze.add_argument("--json", action="store_true", help="print the full AnalysisResult as JSON")
    analyze.add_argument("--rerun", action="store_true", help="analyse again instead of serving a stored result")

    factcheck = source_command(
        "factcheck", "a fact-check report: provenance, shots, audio and visual signals, three checks"
    )
    add_model_options(factcheck)
    factcheck.add_argument("--json", action="store_true", help="print the whole report as JSON")
    factcheck.add_argument("--html", help="also write the report as one self-contained HTML file")
    factcheck.add_argument("--rerun", action="store_true", help="check again instead of serving a stored report")
    factcheck.add_argument(
        "--measure-only", action="store_true",
        help="only the evidence that needs no model (provenance, shots and keyframes, audio and picture signals)",
    )  # fmt: skip

    digest = source_command("digest", "Gemini's digest: summary, scenes, transcript, on-screen text, claims, audio")
    digest.add_argument("--gemini-model", help="Gemini model name (default gemini-flash-latest); key: GEMINI_API_KEY")
    digest.add_argument("--refresh", action="store_true", help="ask Gemini again instead of using the stored digest")
    digest.add_argument("--json", action="store_true", help="print the stored digest record as JSON")

    tiny = commands.add_parser("tiny-model", help="write a tiny random checkpoint of the local model's architecture")
    tiny.add_argument("directory", help="new folder to write it to")
    COMMANDS.update(add_batch_commands(commands, add_model_options, request_from))  # batch, evaluate
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "fetch": cmd_fetch,
    "inspect": cmd_inspect,
    "frames": cmd_frames,
    "analyze": cmd_analyze,
    "factcheck": cmd_factcheck,
    "digest": cmd_digest,
    "tiny-model": cmd_tiny_model,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        settings = get_settings()
        sweep_stale(settings.data_dir)  # what a killed vChat process left in the data dir
        return COMMANDS[args.command](args, settings)
    except VChatError as exc:
        sys.stderr.write(f"error: {exc.one_line()}\n")
        return exc.exit_code
    except ValidationError as exc:  # a setting out of range (pydantic's own bounds)
        sys.stderr.write(f"error: {validation_message(exc)}\n")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return EXIT_INTERNAL
    except Exception as exc:  # an internal error: say so in one line; details with -v
        logging.getLogger("core").debug("internal error", exc_info=True)
        sys.stderr.write(f"error: internal error ({type(exc).__name__}: {str(exc)[:300]}); rerun with -v for details\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
