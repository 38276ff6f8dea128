"""The media pipeline: fetch (URL guard, yt-dlp, uploads, local paths), probe, sanitize,
provenance, frames. `core.media.pipeline.prepare_media` runs it and returns a `MediaAsset`.

Nothing is imported here, so `import core.media.storage` (for instance) does not pull yt-dlp and
PyAV in with it: each module imports what it needs, where it needs it."""
