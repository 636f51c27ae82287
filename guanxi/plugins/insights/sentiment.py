"""Sentiment of short customer texts, offline: a lexicon model written here.

Chinese is segmented with jieba (its dictionary ships inside the package) with the lexicon's
words added as a user dictionary; without jieba installed, Chinese is matched greedily against
the lexicon (longest word first). English words, emoji and multi-word phrases are matched
directly. A polar word after a negator counts the other way (weaker), after an intensifier
more; a sarcasm mark (🙄, 呵呵, "oh great") makes positive words count as negative. The score is
in [-1, 1]; ``label`` is ``pos`` above ``+POLAR``, ``neg`` below ``-POLAR``, else ``neu``.

Another plugin supplies a better model through ``guanxi_insights_sentiment``
(:mod:`guanxi.plugins.insights.hookspecs`).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from typing import Any

import msgspec

from guanxi.plugins.insights.lexicon import ACTIONS, CLAUSE_ENDS, EMOJI, EN, INTENSIFIERS, NEGATORS_EN, NEGATORS_ZH, SARCASM_MARKS, ZH

#: The score above which a text is positive (below its negative, negative).
POLAR = 0.2
MODEL = "lexicon-1"

_HAN = re.compile(r"[\u3400-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_TOKEN = re.compile(r"[\u3400-\u9fff]+|[A-Za-z]+(?:'[a-z]+)?|[^\sA-Za-z\u3400-\u9fff]", re.UNICODE)
_EN_PHRASES = sorted((w for w in EN if " " in w), key=len, reverse=True)
_ZH_LONGEST = max(len(w) for w in ZH)


class Sentiment(msgspec.Struct, frozen=True, kw_only=True):
    """One text's sentiment: ``score`` in [-1, 1], its ``label`` (pos, neg, neu), the text's
    ``language`` (zh, en, mixed, other) and the ``model`` that scored it."""

    score: float
    label: str
    language: str
    model: str = MODEL


def language(text: str) -> str:
    """``zh``, ``en``, ``mixed`` (both Han characters and Latin words) or ``other``."""
    han, latin = bool(_HAN.search(text)), bool(_LATIN.search(text))
    if han and latin:
        return "mixed"
    return "zh" if han else "en" if latin else "other"


def label(score: float) -> str:
    return "pos" if score > POLAR else "neg" if score < -POLAR else "neu"


@functools.cache
def _jieba() -> Any:
    """jieba's segmenter with the lexicon as user dictionary (built once, on first use), or
    None when jieba is not installed."""
    try:
        import jieba
    except ImportError:  # pragma: no cover - jieba is the plugin's extra
        return None
    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    for word in (*ZH, *NEGATORS_ZH, *(w for w in INTENSIFIERS if _HAN.search(w)), *_added):
        tokenizer.add_word(word, freq=200000)
    return tokenizer


_added: set[str] = set()


def has_segmenter() -> bool:
    """Whether jieba is installed (else Chinese is matched greedily against the lexicon)."""
    return _jieba() is not None


def add_words(words: list[str]) -> None:
    """Add words (product names, a tenant's keywords) to the segmenter's user dictionary (each
    once per process)."""
    tokenizer = _jieba()
    if tokenizer:
        for word in words:
            if word not in _added and _HAN.search(word):
                tokenizer.add_word(word, freq=200000)
                _added.add(word)


def segment(run: str) -> list[str]:
    """Segment a run of Han characters: jieba when installed, else greedy lexicon matching."""
    tokenizer = _jieba()
    return list(tokenizer.lcut(run, HMM=False)) if tokenizer else _greedy(run)


def _greedy(run: str) -> list[str]:
    """Longest-first matching against the lexicon, one character where nothing matches."""
    out: list[str] = []
    known = ZH.keys() | NEGATORS_ZH | INTENSIFIERS.keys()
    i = 0
    while i < len(run):
        for size in range(min(_ZH_LONGEST, len(run) - i), 0, -1):
            if run[i : i + size] in known or size == 1:
                out.append(run[i : i + size])
                i += size
                break
    return out


def tokens(text: str) -> list[str]:
    """The text's tokens: Chinese words, lower-case English words, emoji and punctuation."""
    out: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if _HAN.match(token):
            out.extend(segment(token))
        else:
            out.append(token.lower())
    return out


def _polarity(token: str) -> float:
    return ZH.get(token) or EN.get(token) or EMOJI.get(token) or 0.0


def score_text(text: str) -> Sentiment:
    """The lexicon model's sentiment of one text."""
    lowered = text.lower()
    words = tokens(text)
    sarcastic = any(mark in lowered for mark in SARCASM_MARKS)
    total = 0.0
    for phrase in _EN_PHRASES:
        if phrase in lowered:
            total += EN[phrase]
            lowered = lowered.replace(phrase, " ")
            words = tokens(lowered)
    for i, token in enumerate(words):
        value = _polarity(token)
        if not value:
            continue
        weight = 1.0
        for back in range(i - 1, max(-1, i - 4), -1):
            previous = words[back]
            if previous in CLAUSE_ENDS or (back < i - 1 and _polarity(previous)):
                break
            if previous in NEGATORS_ZH or previous in NEGATORS_EN:
                if token not in ACTIONS:
                    weight *= -0.7 if value > 0 else -0.5
                break
            if previous in INTENSIFIERS and back == i - 1:
                weight *= INTENSIFIERS[previous]
        value *= weight
        if sarcastic and value > 0 and token not in EMOJI:
            value = -value * 0.5
        total += value
    if "!" in text or "！" in text:
        total *= 1.2
    if text.rstrip().endswith(("?", "？", "吗")):
        total *= 0.5
    score = math.tanh(total / 3)
    return Sentiment(score=round(score, 4), label=label(score), language=language(text))
