"""How the HTTP adapters classify what a provider answers, against a real local server that answers
busy, broken, slow or garbage: the dispatcher retries only what a retry can fix, and learns which
contact is bad from a permanent refusal."""

from __future__ import annotations

import json
import socket

import pytest

from services.dispatcher.adapters.base import ChannelError
from services.dispatcher.adapters.http import HttpClient
from services.dispatcher.adapters.sms import SmsAdapter
from services.dispatcher.adapters.vipps import VippsAdapter
from tests.support.http_channels import API_KEY, misbehaving_provider, outgoing


def _error(code: str) -> str:
    return json.dumps({"error": code, "message": "the customer +4791234568 is …"})


async def _refusal(status: int, body: str, *, delay: float = 0.0, timeout: float = 2.0) -> ChannelError:
    async with misbehaving_provider() as (url, provider):
        provider.answer(status, body, delay=delay)
        sms = SmsAdapter(base_url=url, api_key=API_KEY, sender="Fjordlys", timeout=timeout)
        try:
            with pytest.raises(ChannelError) as refused:
                await sms.send(outgoing("sms"))
        finally:
            await sms.close()
    return refused.value


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (429, _error("rate_limited"), "rate_limited"),
        (503, _error("unavailable"), "unavailable"),
        (503, "<html><body>Service Unavailable</body></html>", "http_503"),
        (500, "", "http_500"),
        (502, "Bad Gateway", "http_502"),
        (408, "", "http_408"),
    ],
)
async def test_busy_or_broken_providers_are_retried(status: int, body: str, code: str) -> None:
    refused = await _refusal(status, body)
    assert refused.retryable
    assert refused.code == code
    assert refused.contact is None


@pytest.mark.parametrize(
    "body",
    ["this is not json", "[1, 2, 3]", '"queued"', ""],
)
async def test_an_accepted_send_with_a_garbage_answer_is_retried(body: str) -> None:
    # The idempotency key makes asking again safe: the provider answers a retry like the first time.
    refused = await _refusal(202, body)
    assert refused.retryable
    assert refused.code == "bad_response"


async def test_a_slow_provider_times_out_and_is_retried() -> None:
    refused = await _refusal(202, '{"id": "sms-1"}', delay=2.0, timeout=0.3)
    assert refused.retryable
    assert refused.code == "timeout"


async def test_an_unreachable_provider_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sms = SmsAdapter(base_url=f"http://127.0.0.1:{port}", api_key=API_KEY, sender="Fjordlys")
    try:
        with pytest.raises(ChannelError) as refused:
            await sms.send(outgoing("sms"))
    finally:
        await sms.close()
    assert refused.value.retryable
    assert refused.value.code == "connection"


async def test_a_refused_number_is_permanent_and_flags_the_phone() -> None:
    refused = await _refusal(400, _error("invalid_recipient"))
    assert not refused.retryable
    assert refused.code == "invalid_recipient"
    assert refused.contact == "phone"


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, _error("invalid_sender"), "invalid_sender"),
        (404, "", "http_404"),
        (409, _error("idempotency_conflict"), "idempotency_conflict"),
        (422, _error("invalid_text"), "invalid_text"),
        # Something that is not a code is not taken for one.
        (400, json.dumps({"error": "Ugyldig mottaker: +47 912 34 568"}), "http_400"),
    ],
)
async def test_other_refusals_are_permanent_without_blaming_a_contact(
    status: int, body: str, code: str
) -> None:
    refused = await _refusal(status, body)
    assert not refused.retryable
    assert refused.code == code
    assert refused.contact is None


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_for_the_operator(status: int) -> None:
    refused = await _refusal(status, _error("unauthorized"))
    assert not refused.retryable
    assert refused.code == "credentials"
    assert refused.contact is None


async def test_no_personal_data_from_the_answer_reaches_the_error_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = await _refusal(400, _error("invalid_recipient"))
    assert "4791234568" not in str(refused)
    assert "4791234568" not in caplog.text
    assert "invalid_recipient" in caplog.text


async def test_vipps_problem_details_give_their_error_code() -> None:
    # The real ePayment API answers RFC 7807 problems, the code in extraDetails.
    problem = {
        "type": "https://developer.vippsmobilepay.com/docs/APIs/epayment-api/errors",
        "title": "Bad Request",
        "status": 400,
        "extraDetails": [{"name": "ErrorCode", "reason": "invalid_phone"}],
    }
    async with misbehaving_provider() as (url, provider):
        provider.answer(400, json.dumps(problem))
        vipps = VippsAdapter(
            base_url=url, api_key=API_KEY, subscription_key="sub", merchant_serial_number="123456"
        )
        try:
            with pytest.raises(ChannelError) as refused:
                await vipps.send(outgoing("vipps"))
        finally:
            await vipps.close()
    assert not refused.value.retryable
    assert refused.value.code == "invalid_phone"
    assert refused.value.contact == "phone"


async def test_every_request_carries_auth_the_idempotency_key_and_the_provider_headers() -> None:
    out = outgoing("vipps")
    async with misbehaving_provider() as (url, provider):
        provider.answer(201, json.dumps({"reference": out.delivery_id, "redirectUrl": "https://x"}))
        vipps = VippsAdapter(
            base_url=url, api_key=API_KEY, subscription_key="sub-key", merchant_serial_number="123456"
        )
        try:
            await vipps.send(out)
        finally:
            await vipps.close()
    [headers] = provider.requests
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["Idempotency-Key"] == out.delivery_id
    assert headers["Ocp-Apim-Subscription-Key"] == "sub-key"
    assert headers["Merchant-Serial-Number"] == "123456"
    assert headers["Vipps-System-Name"] == "fordring"
    assert headers["Vipps-System-Version"]


async def test_a_closed_client_opens_a_new_session_when_used_again() -> None:
    async with misbehaving_provider() as (url, provider):
        provider.answer(202, '{"id": "x"}')
        client = HttpClient("sms", url, API_KEY)
        await client.post("/a", {})
        await client.close()
        reply = await client.post("/a", {})
        await client.close()
    assert reply.status == 202
    assert len(provider.requests) == 2
