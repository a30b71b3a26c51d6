"""The published event contracts (docs/asyncapi) are the ones the code speaks."""

from __future__ import annotations

import json
from pathlib import Path

from services.common.asyncapi import TOPICS, specification

DOC = Path(__file__).parents[3] / "docs" / "asyncapi" / "asyncapi.json"


def test_committed_document_matches_the_code() -> None:
    generated = json.loads(specification().to_specification().to_json())
    committed = json.loads(DOC.read_text())
    assert generated == committed, "event schemas changed: run `make asyncapi` and commit docs/asyncapi"


def test_every_topic_documents_its_event_types() -> None:
    doc = json.loads(specification().to_specification().to_json())
    schemas = doc["components"]["schemas"]
    for topic, (_, types) in TOPICS.items():
        assert topic in doc["channels"]
        for event_type in types:
            assert schemas[event_type.__name__]["properties"]["type"]["const"] == event_type.__name__
