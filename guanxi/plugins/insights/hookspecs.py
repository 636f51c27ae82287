"""The insights plugin's own hook: another plugin supplies a better sentiment model.

Added to the plugin manager when the insights plugin starts (``guanxi_startup``). A plugin that
implements it marks its implementation ``@hookimpl(optionalhook=True)`` (the plugin manager
checks every hook name when plugins load, before this spec is added) and needs no import of this
module: pluggy matches hooks by name.
"""

from __future__ import annotations

from typing import Any

from guanxi.core.hooks.specs import hookspec


@hookspec(firstresult=True)
def guanxi_insights_sentiment(text: str, language: str) -> Any:
    """Score one inbound text's sentiment instead of the insights plugin's lexicon model.

    ``language`` is ``zh``, ``en``, ``mixed`` or ``other``. Return ``(score, model)``: ``score``
    a float in [-1, 1] (negative is unhappy), ``model`` a name of at most 64 characters recorded
    with the score; or None to let the next plugin (finally the lexicon model) answer. May be
    ``async def``. Called after the interaction committed, once per inbound text: an answer out
    of range is logged and the lexicon model is used.
    """
