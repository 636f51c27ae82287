"""Reading mail as it comes, not as it should be: headers and bodies in the charset they name,
or mislabel (GB2312 that is really GBK, Big5 with HKSCS characters, 8-bit headers without
encoded words), and MIME that is broken in ordinary ways."""

from __future__ import annotations

import codecs
import re
from email import message_from_bytes
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses, parseaddr

#: Charsets mail labels with a narrower set than its bytes use: read them as the superset.
SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030", "big5": "big5hkscs"}


def codec(charset: str | None) -> str:
    name = (charset or "utf-8").strip().strip('"').lower()
    name = SUPERSETS.get(name, name)
    try:
        return SUPERSETS.get(codecs.lookup(name).name, codecs.lookup(name).name)
    except LookupError:
        return "utf-8"


def decode_bytes(data: bytes, charset: str | None) -> str:
    """``data`` in its declared charset (read as the superset), else UTF-8, GB18030, Big5;
    undecodable bytes replaced rather than refused."""
    for name in dict.fromkeys([codec(charset), "utf-8", "gb18030", "big5hkscs"]):
        try:
            return data.decode(name)
        except UnicodeDecodeError:
            continue
    return data.decode(codec(charset), errors="replace")


def header(msg: Message, name: str) -> str | None:
    """A header's text: encoded words decoded in their charsets, raw 8-bit bytes guessed."""
    raw = next((str(v) for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return None
    if any("\udc80" <= c <= "\udcff" for c in raw):  # 8-bit bytes without encoded words
        return decode_bytes(raw.encode("ascii", "surrogateescape"), None).strip()
    try:
        parts = decode_header(raw)
    except Exception:  # a malformed encoded word: keep the text as it came
        return raw.strip()
    text = "".join(p.decode(codec(cs), errors="replace") if isinstance(p, bytes) else p for p, cs in parts)
    return re.sub(r"\s+", " ", text).strip()


def parse(data: bytes) -> Message:
    return message_from_bytes(data)


def address(value: str | None) -> tuple[str, str | None]:
    """(lower-case address, display name) of a From header; ("", None) when there is none."""
    name, addr = parseaddr(value or "")
    return addr.strip().lower(), (name.strip() or None)


def addresses(msg: Message, *names: str) -> list[str]:
    return [a.lower() for _, a in getaddresses([str(v) for n in names for v in msg.get_all(n, [])]) if "@" in a]


def text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_bytes(payload, part.get_content_charset())


_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)


def html_to_text(body: str) -> str:
    import html

    return re.sub(r"[ \t]*\n\s*\n\s*", "\n\n", html.unescape(_TAGS.sub(" ", body))).strip()
