"""The channel adapter: sends messages through Pigeon's HTTP API."""

from __future__ import annotations

import httpx

from guanxi import (
    Capabilities,
    Channel,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from guanxi_pigeon.settings import PigeonSettings


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None  # Pigeon sends seconds


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
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientDeliveryError(
                f"Pigeon answered {response.status_code}", provider_code=str(response.status_code), retry_after_s=retry_after(response)
            )
        if response.status_code >= 400:
            code = response.json().get("error") if response.headers.get("content-type", "").startswith("application/json") else None
            raise PermanentDeliveryError(f"Pigeon refused the message ({response.status_code} {code})", provider_code=code)
        return DeliveryResult(provider_message_id=response.json()["id"])

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
