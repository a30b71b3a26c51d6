"""The collection agency's daily file: one JSON object per line, one line per claim handed off that
day — the claim (amounts, the notices and fees with their dates, interest to date) and the debtor as
the ledger knows them at export time (events carry no personal data; the file must)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.json_format import MessageToDict

from services.common.ledger_client import LedgerClient
from services.common.mongo import Doc

_DEBTOR_FIELDS = (
    "id",
    "number",
    "name",
    "kind",
    "org_number",
    "national_id_masked",
    "email",
    "phone",
    "address",
    "language",
)


async def export_file(ledger: LedgerClient, tenant_id: str, claims: Sequence[Doc]) -> bytes:
    customer_ids = sorted({c["claim"]["customer_id"] for c in claims})
    customers = await ledger.customers(tenant_id, customer_ids) if customer_ids else {}
    lines = []
    for doc in claims:
        claim = dict(doc["claim"])
        customer = customers.get(claim["customer_id"])
        debtor = (
            {
                k: v
                for k, v in MessageToDict(customer, preserving_proto_field_name=True).items()
                if k in _DEBTOR_FIELDS
            }
            if customer is not None
            else {"id": claim["customer_id"]}
        )
        lines.append(json.dumps({"claim": claim, "debtor": debtor}, ensure_ascii=False, sort_keys=True))
    return ("\n".join(lines) + ("\n" if lines else "")).encode()


def write_atomically(directory: Path, filename: str, content: bytes) -> Path:
    """The file appears whole or not at all (the agency's pickup never reads half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / filename
    partial = directory / f".{filename}.partial"
    with open(partial, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(target)
    return target
