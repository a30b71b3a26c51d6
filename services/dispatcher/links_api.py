"""`fordring.dispatcher.v1.InvoiceLinkService`: the portal tells the dispatcher that a customer opened
an invoice's link (the open is the Tracker's, as when the dispatcher served the link itself)."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from fordring.dispatcher.v1 import links_pb2 as pb
from fordring.dispatcher.v1 import links_pb2_grpc

from services.common.errors import FieldViolation, InvalidArgument
from services.dispatcher.tracking import Tracker

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InvoiceLinkService"].full_name


class InvoiceLinkApi(links_pb2_grpc.InvoiceLinkServiceServicer):
    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker

    async def RecordOpen(  # noqa: N802 - gRPC method name
        self, request: pb.RecordOpenRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RecordOpenResponse:
        if not request.invoice_id or len(request.invoice_id) > 64:
            raise InvalidArgument([FieldViolation("invoice_id", "an invoice id (at most 64 characters)")])
        try:
            delivery = await self._tracker.opened(request.invoice_id)
        except Exception:  # the open is a nicety; whose invoice it is still matters
            log.exception("dispatcher: could not record an open")
            delivery = None
        if delivery is not None:
            return pb.RecordOpenResponse(tenant_id=delivery["tenant_id"], delivery_id=delivery["_id"])
        return pb.RecordOpenResponse(tenant_id=await self._tracker.tenant_of(request.invoice_id) or "")
