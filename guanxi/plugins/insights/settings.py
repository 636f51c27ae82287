"""The ``[plugins.insights]`` config section, validated at start."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

DEFAULT_KEYWORDS = ["投诉", "退款", "退货", "赔偿", "12315", "消协", "complaint", "refund", "chargeback", "lawyer"]


class InsightsSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``alert_threshold``: an inbound text whose sentiment score is at or below it raises an
    alert (scores are in [-1, 1]); ``alert_keywords``: a text containing one of them (case
    ignored) raises an alert whatever its score; ``alert_due_hours``: the alert task is due this
    many hours after the message; ``alerts``: false turns alerts off (scores are still kept).
    Scores with the scoring plugin: see ``score_points``."""

    alerts: bool = True
    alert_threshold: Annotated[float, Meta(ge=-1, le=0)] = -0.6
    alert_keywords: list[Annotated[str, Meta(min_length=1, max_length=50)]] = msgspec.field(default_factory=lambda: list(DEFAULT_KEYWORDS))
    alert_due_hours: Annotated[int, Meta(ge=0, le=720)] = 4
    #: The score component ``insights.sentiment``: the mean sentiment of the customer's inbound
    #: texts of the last ``score_window_days`` days times ``score_points`` (a negative mean lowers
    #: the score; 0 turns the component off).
    score_points: Annotated[float, Meta(ge=-1000, le=1000)] = 10.0
    score_window_days: Annotated[int, Meta(ge=1, le=3650)] = 30
    #: The score component ``insights.trend``: the mean sentiment of the last ``trend_days`` days
    #: minus that of the ``trend_days`` before, times ``trend_points`` (a customer turning unhappy
    #: loses points; both windows need a text; 0 turns the component off).
    trend_points: Annotated[float, Meta(ge=-1000, le=1000)] = 10.0
    trend_days: Annotated[int, Meta(ge=1, le=365)] = 14
    #: The service queue's rank (``serviceQueue``): points per alert of the window, per unit of
    #: negative mean sentiment and per unit of negative trend; unhappy customers first.
    service_alert_points: Annotated[float, Meta(ge=0, le=1000)] = 20.0
    service_sentiment_points: Annotated[float, Meta(ge=0, le=1000)] = 30.0
    service_trend_points: Annotated[float, Meta(ge=0, le=1000)] = 30.0
