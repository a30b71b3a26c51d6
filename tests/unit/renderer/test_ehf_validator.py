"""The in-process Peppol validator: vendored rules unchanged, the official examples valid, and what it
says about documents that are not UBL at all."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from services.renderer.adapters.peppol import RULES_HOME, PeppolValidator

EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "peppol" / "examples"


def test_the_vendored_rules_and_schemas_are_the_published_ones() -> None:
    listed = {}
    for row in (RULES_HOME / "SHA256SUMS").read_text().splitlines():
        digest, name = row.split(maxsplit=1)
        listed[name] = digest
    present = {str(p.relative_to(RULES_HOME)) for p in RULES_HOME.rglob("*") if p.suffix in (".xsd", ".xslt")}
    assert present == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((RULES_HOME / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the shared Peppol examples are not here")
def test_the_official_examples_are_valid(peppol_validator: PeppolValidator) -> None:
    examples = sorted(EXAMPLES.glob("*.xml"))
    assert len(examples) >= 8
    for path in examples:
        report = peppol_validator.validate(path.read_bytes())
        assert report.valid, f"{path.name}: {report.summary()}"


def test_what_is_not_a_ubl_document(peppol_validator: PeppolValidator) -> None:
    assert peppol_validator.validate(b"<Invoice>").rules() == {"XML"}
    assert peppol_validator.validate(b"<Order xmlns='urn:x'/>").rules() == {"ROOT"}
    doctype = b'<!DOCTYPE Invoice [<!ENTITY x SYSTEM "file:///etc/passwd">]><Invoice>&x;</Invoice>'
    assert peppol_validator.validate(doctype).rules() == {"XML"}
    external = b'<!DOCTYPE Invoice SYSTEM "http://example.invalid/ubl.dtd"><Invoice/>'
    assert peppol_validator.validate(external).rules() == {"XML"}
    empty = b"<Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>"
    report = peppol_validator.validate(empty)
    assert {"XSD", "BR-01", "PEPPOL-EN16931-R001"} <= report.rules()


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="the shared Peppol examples are not here")
def test_threads_may_share_one_validator(peppol_validator: PeppolValidator) -> None:
    document = (EXAMPLES / "base-example.xml").read_bytes()
    broken = document.replace(b"<cbc:IssueDate>", b"<cbc:IssueDate>x", 1)
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(peppol_validator.validate, [document, broken] * 8))
    assert [r.valid for r in reports] == [True, False] * 8
    assert all("PEPPOL-EN16931-F001" in r.rules() for r in reports[1::2])
