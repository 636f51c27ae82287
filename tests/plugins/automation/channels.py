"""Local channels for the bulk-send tests: one that broadcasts, one that cannot, one with a
messaging window (Douyin-like), each recording what it was asked to deliver."""

from __future__ import annotations

from guanxi import Capabilities, Channel, DeliveryResult, OutboundMessage, hookimpl


class Broadcast(Channel):
    name = "broadcast"
    capabilities = Capabilities(send_text=True, broadcast=True, max_text_length=200)

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message)
        return DeliveryResult(provider_message_id=f"pm-{len(self.sent)}")


class Windowed(Broadcast):
    name = "windowed"
    capabilities = Capabilities(send_text=True, broadcast=True, messaging_window_s=3600)


class OneToOne(Broadcast):
    name = "onetoone"
    capabilities = Capabilities(send_text=True)


class ChannelsPlugin:
    def __init__(self) -> None:
        self.broadcast, self.windowed, self.onetoone = Broadcast(), Windowed(), OneToOne()

    @hookimpl
    def guanxi_channels(self) -> list[Channel]:
        return [self.broadcast, self.windowed, self.onetoone]
