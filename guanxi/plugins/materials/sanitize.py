"""Articles are stored as sanitised HTML (ammonia, through ``nh3``): formatting, links and images
stay; scripts, event handlers, ``javascript:`` URLs, styles and frames go."""

from __future__ import annotations

import nh3

TAGS = frozenset(
    {"a", "b", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "u", "ul"}
    | {"table", "thead", "tbody", "tr", "th", "td", "span", "div", "figure", "figcaption"}
)
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}, "td": {"colspan", "rowspan"}}


def clean(html: str) -> str:
    """The HTML with only the allowed tags, attributes and http(s)/mailto URLs."""
    return nh3.clean(html, tags=set(TAGS), attributes={k: set(v) for k, v in ATTRIBUTES.items()}, url_schemes={"http", "https", "mailto"})
