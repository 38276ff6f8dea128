"""One analysis as a record that stands on its own: where the video came from, what it is, what was
done to it, and the answer with everything it rests on (the JSON download, `AnalysisRun.result_json`).

What goes in: the source (kind, URL, file name, title, uploader, upload date, when it was fetched),
the provenance read from the original bytes (sha256, container metadata, C2PA), the probe and the
sanitize facts, and the stored result itself. What stays out: paths on this server (they mean nothing
elsewhere) and any API key (none is ever part of a result, a source or a media record). A run whose
video a remote engine read from its URL (nothing downloaded) says so instead of the media facts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.analysis.runner import AnalysisRun
    from core.media.pipeline import MediaAsset

EXPORT_VERSION = 1
NOT_DOWNLOADED = (
    "The engine read the video from its URL itself; no copy was downloaded here, so there are no "
    "provenance, C2PA, probe or sanitize facts for this record."
)


def export_record(run: AnalysisRun) -> dict[str, Any]:
    """The export of `run`: source, media facts and the result, in one JSON-ready dict."""
    data = run.data
    record: dict[str, Any] = {
        "vchat_export": EXPORT_VERSION,
        "question": data.get("question"),
        "answer": data.get("answer"),
        "result_key": run.key,
        "stored_at": run.stored_at,
    }
    if run.asset is None:
        record["source"] = {"kind": "url", "url": run.source_url, "downloaded": False, "note": NOT_DOWNLOADED}
        record["media"] = None
    else:
        record["source"] = {
            **run.asset.source.model_dump(mode="json"),
            "downloaded": True,
            "reused_download": run.asset.reused_download,
        }
        record["media"] = _media(run.asset)
    record["result"] = data
    return record


def _media(asset: MediaAsset) -> dict[str, Any]:
    """What the bytes are: provenance (before anything rewrote them), the probe, and what sanitizing did."""
    sanitized = asset.sanitized
    return {
        "sha256": asset.sha256,
        "provenance": asset.provenance.model_dump(mode="json"),
        "probe": asset.probe.model_dump(mode="json", exclude={"path"}),
        "sanitize": {
            "path_taken": sanitized.path_taken,
            "plan": sanitized.plan.model_dump(mode="json"),
            "warnings": sanitized.warnings,
            "seconds": sanitized.seconds,
            "settings_key": sanitized.settings_key,
            "reused": sanitized.reused,
            "output": sanitized.probe.model_dump(mode="json", exclude={"path", "streams"}),
        },
    }
