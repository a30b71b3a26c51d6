"""The one registry of Fordring's span and metric attribute names (prefix `fordring.`).

Personal data (national ids, names, addresses) never goes into attributes.
"""

from __future__ import annotations

from typing import Final

INVOICE_ID: Final = "fordring.invoice_id"
INVOICE_NUMBER: Final = "fordring.invoice_number"
TENANT_ID: Final = "fordring.tenant_id"
CUSTOMER_ID: Final = "fordring.customer_id"
PAYMENT_ID: Final = "fordring.payment_id"
EVENT_ID: Final = "fordring.event_id"
EVENT_TYPE: Final = "fordring.event_type"
IDEMPOTENCY_REPLAY: Final = "fordring.idempotency_replay"
BATCH_SIZE: Final = "fordring.batch_size"
CONSUMER: Final = "fordring.consumer"
STATUS: Final = "fordring.status"
ERROR_ID: Final = "fordring.error_id"
