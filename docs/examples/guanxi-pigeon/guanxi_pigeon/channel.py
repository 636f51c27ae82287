"""The channel adapter: sends messages through Pigeon's HTTP API."""

from __future__ import annotations

import httpx

from guanxi import Capabilities, Channel, DeliveryResult, OutboundMessage, TransientDeliveryError, delivery_error
from guanxi_pigeon.settings import PigeonSettings


class PigeonChannel(Channel):
    name = "pigeon"
    capabilities = Capabilities(receive=True, send_text=True, max_text_length=2000)

    def __init__(self, settings: PigeonSettings) -> None:
        self.settings = settings
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # opened on first use, closed by aclose()
            self._client = httpx.AsyncClient(
                base_url=self.settings.api_base_url,
                headers={"Authorization": f"Bearer {self.settings.api_token}"},
                timeout=self.settings.timeout_s,
            )
        return self._client

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        try:
            response = await self.client.post(
                "/v1/messages",
                json={"to": message.recipient, "text": message.text},
                headers={"Idempotency-Key": message.idempotency_key},
            )
        except httpx.TransportError as exc:  # timeouts, refused connections
            raise TransientDeliveryError(f"Pigeon unreachable: {type(exc).__name__}") from exc
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        retry_after = response.headers.get("Retry-After")
        error = delivery_error(response.status_code, retry_after=retry_after, provider_code=body.get("error"), provider="Pigeon")
        if error is not None:
            raise error
        return DeliveryResult(provider_message_id=body["id"])

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
