"""Staff handover on WeCom: the follow relations of handed-over customers move to the new
owner's member through WeCom's transfer APIs (在职继承 / 离职继承). The call only starts each
transfer: WeCom asks the customer, and a refusal arrives later as a ``transfer_fail`` callback."""

from __future__ import annotations

import logging
from typing import Any

from guanxi.plugins.wecom.settings import CorpSettings

log = logging.getLogger("guanxi.plugins.wecom")


async def transfer_follows(state: Any, plans: list[tuple[CorpSettings, str, str, list[str]]], *, resigned: bool) -> dict[str, int]:
    """Start the transfers; returns each customer's errcode (0: under way). A customer WeCom
    refuses at once (e.g. 40129, a transfer already under way) is logged, not retried."""
    results: dict[str, int] = {}
    for corp, handover_userid, takeover_userid, externals in plans:
        client = state.client(corp)
        if client is None:
            log.warning("corp %s has no secret: %d customers of %s not transferred", corp.key, len(externals), handover_userid)
            continue
        answered = await client.transfer_customer(handover_userid, takeover_userid, externals, resigned=resigned)
        refused = {e: code for e, code in answered.items() if code != 0}
        if refused:
            log.warning("corp %s: WeCom refused to transfer %d customers of %s: %s", corp.key, len(refused), handover_userid, refused)
        results.update(answered)
    return results
