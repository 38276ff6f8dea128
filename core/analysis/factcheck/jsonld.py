"""schema.org markup of a person's rating: MediaReview, and ClaimReview when a claim was named.

Only a person's rating is published this way (the machine's suggestion never is). "Insufficient
evidence" has no MediaReview category: no MediaReview is made for it, and the caller says so.
"""

from __future__ import annotations

from typing import Any

from core.analysis.factcheck.report import FactCheckReport, HumanRating, Rating

CATEGORIES: dict[Rating, str] = {
    "Original": "OriginalMediaContent",
    "Missing context": "DecontextualizedContent",
    "Edited or cropped": "EditedOrCroppedContent",
    "Transformed": "TransformedContent",
    "Staged": "StagedContent",
    "Satire": "SatireOrParodyContent",
}


def review_markup(report: FactCheckReport, rating: HumanRating) -> dict[str, Any] | None:
    """JSON-LD for the person's rating of this video (None: the rating has no MediaReview category)."""
    category = CATEGORIES.get(rating.rating)
    if category is None:
        return None
    source = report.media.source
    video: dict[str, Any] = {"@type": "VideoObject", "sha256": report.media.sha256}
    url = source.webpage_url or source.url
    if url:
        video["contentUrl"] = url
    if source.title:
        video["name"] = source.title
    if source.upload_date:
        video["uploadDate"] = _iso_day(source.upload_date)
    author = {"@type": "Person", "name": rating.name}
    graph: list[dict[str, Any]] = [
        {
            "@type": "MediaReview",
            "datePublished": rating.at[:10],
            "author": author,
            "mediaAuthenticityCategory": f"https://schema.org/{category}",
            "itemReviewed": {"@type": "MediaReviewItem", "mediaItemAppearance": [video]},
            **({"originalMediaContextDescription": rating.note} if rating.note else {}),
        }
    ]
    if rating.claim:
        graph.append(
            {
                "@type": "ClaimReview",
                "datePublished": rating.at[:10],
                "author": author,
                "claimReviewed": rating.claim,
                "itemReviewed": {"@type": "Claim", "appearance": [video]},
                "reviewRating": {"@type": "Rating", "alternateName": rating.rating},
                **({"reviewBody": rating.note} if rating.note else {}),
            }
        )
    return {"@context": "https://schema.org", "@graph": graph}


def _iso_day(value: str) -> str:
    """yt-dlp's 20240115 as 2024-01-15."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value
