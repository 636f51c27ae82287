#!/usr/bin/env python3
"""Make the poster font: a subset of Noto Sans CJK SC (SIL Open Font License 1.1) holding
ASCII, the GB 2312 character set (its 6,763 hanzi, the common simplified characters of names,
and its punctuation and full-width forms) and a few name characters outside GB 2312.

Source: Debian's ``fonts-noto-cjk`` package (``apt-get install fonts-noto-cjk``), face 2 of
``NotoSansCJK-Regular.ttc`` (Noto Sans CJK SC). Needs fontTools (a dev dependency). Run from the
repository root; it rewrites ``guanxi/plugins/referral/fonts/NotoSansSC-Guanxi-subset.otf``::

    .venv/bin/python scripts/subset-cjk-font.py
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FACE = 2  # Noto Sans CJK SC
TARGET = Path("guanxi/plugins/referral/fonts/NotoSansSC-Guanxi-subset.otf")
#: common in given names, missing from GB 2312
EXTRA = (
    "喆玥珺瑄昇堃淼垚焱犇骉鑫琍姮婕婳嫣妤娅婧嬿珏玮琛琨琦瑜瑾璇璐璟玙珩珂琰瑛琪琳瑶"
    "璋璞璨瓒钰铄镕昊晟晔暄曦昱炜烨熠煜焜赟赫彧祎祺禛禕禹筠芃芮芷苒茜荟莜萱蓁蔚蕙蕊蕾薇"
)


def characters() -> str:
    chars = {chr(c) for c in range(0x20, 0x7F)}
    for first in range(0xA1, 0xF8):
        for second in range(0xA1, 0xFF):
            with contextlib.suppress(UnicodeDecodeError):
                chars.add(bytes((first, second)).decode("gb2312"))
    chars.update(EXTRA)
    return "".join(sorted(chars))


def main() -> int:
    if not SOURCE.exists():
        print(f"{SOURCE} is missing: apt-get install fonts-noto-cjk", file=sys.stderr)
        return 1
    font = TTCollection(str(SOURCE)).fonts[FACE]
    options = subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True  # keep the box drawn for missing characters
    options.hinting = False
    subsetter = subset.Subsetter(options)
    text = characters()
    subsetter.populate(text=text)
    subsetter.subset(font)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(TARGET))
    print(f"{TARGET}: {len(text)} characters, {TARGET.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
