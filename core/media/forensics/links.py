"""Reverse-image-search links for a picture that has a public URL (a platform's thumbnail).

vChat opens none of these links itself and uploads nothing: they are offered to the person, who
decides to follow them. Local keyframes have no public URL; the page offers them as downloads.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from core.media.forensics.models import SearchLink, Thumbnail

# (engine, URL template taking the percent-encoded image URL): each engine's "search by image URL".
ENGINES: tuple[tuple[str, str], ...] = (
    ("Google Lens", "https://lens.google.com/uploadbyurl?url={}"),
    ("Bing", "https://www.bing.com/images/search?view=detailv2&iss=sbi&form=SBIVSP&sbisrc=UrlPaste&q=imgurl:{}"),
    ("Yandex", "https://yandex.com/images/search?rpt=imageview&url={}"),
    ("TinEye", "https://tineye.com/search?url={}"),
)
MAX_THUMBNAILS = 4
SEARCH_NOTE = (
    "vChat uploads nothing: to reverse-search a keyframe, download it and upload it yourself at "
    "images.google.com (Lens), bing.com/visualsearch, yandex.com/images or tineye.com."
)


def public_image_url(url: str | None) -> bool:
    """True for an http(s) URL with a host (the only kind a search engine can fetch)."""
    if not url:
        return False
    parts = urlsplit(url.strip())
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def search_links(image_url: str) -> list[SearchLink]:
    """Google Lens, Bing, Yandex and TinEye "search by image URL" links for `image_url` (encoded)."""
    encoded = quote(image_url.strip(), safe="")
    return [SearchLink(engine=engine, url=template.format(encoded)) for engine, template in ENGINES]


def thumbnails(urls: list[str]) -> list[Thumbnail]:
    """The platform's public pictures of the video (deduplicated, http(s) only), each with its links."""
    seen: list[str] = []
    for url in urls:
        if public_image_url(url) and url not in seen:
            seen.append(url)
    return [Thumbnail(url=url, search_links=search_links(url)) for url in seen[:MAX_THUMBNAILS]]
