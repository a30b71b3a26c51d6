"""Peppol BIS Billing 3.0 / EHF validation in-process, as the official validator does it
(../shared/peppol/validate.py): the OASIS UBL 2.1 XSD, then the CEN EN 16931 and the Peppol schematron
rules (compiled XSLT) run by SaxonC. The rules and schemas are vendored in services/renderer/peppol/
(README.md there names their sources and licences).

Build one PeppolValidator per process and reuse it: compiling the rules takes about half a second,
validating a document about 15 ms. It serialises its calls, so threads may share it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from lxml import etree
from saxonche import PySaxonApiError, PySaxonProcessor

RULES_HOME: Final = Path(__file__).resolve().parent.parent / "peppol"
RULE_FILES: Final = ("rules/CEN-EN16931-UBL.xslt", "rules/PEPPOL-EN16931-UBL.xslt")
SCHEMA_FILES: Final = {
    "Invoice": "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd",
    "CreditNote": "ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd",
}
_SVRL = "{http://purl.oclc.org/dsdl/svrl}"
_UBL_NAMESPACES = {
    "Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
}


@dataclass(frozen=True)
class Finding:
    """One failed rule: its id ("BR-CO-15", "NO-R-001", "XSD" for the schema, "XML" for syntax)."""

    rule: str
    flag: str
    text: str
    location: str

    @property
    def fatal(self) -> bool:
        return self.flag == "fatal"


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def fatal(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.fatal)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.fatal)

    @property
    def valid(self) -> bool:
        """No fatal finding (warnings allowed), as the official validator decides."""
        return not self.fatal

    def rules(self, *, fatal_only: bool = True) -> frozenset[str]:
        return frozenset(f.rule for f in (self.fatal if fatal_only else self.findings))

    def summary(self) -> str:
        return "; ".join(f"{f.flag} {f.rule}: {f.text}" for f in self.findings) or "valid"


class PeppolValidator:
    def __init__(self, home: Path = RULES_HOME) -> None:
        self._lock = threading.Lock()
        self._saxon = PySaxonProcessor(license=False)
        compiler = self._saxon.new_xslt30_processor()
        self._rules = [compiler.compile_stylesheet(stylesheet_file=str(home / name)) for name in RULE_FILES]
        self._schemas = {
            root: etree.XMLSchema(etree.parse(str(home / name))) for root, name in SCHEMA_FILES.items()
        }
        # No DTDs, entities or network: what is validated may come from outside.
        self._parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
        )

    def validate(self, document: bytes) -> Report:
        return Report(self.findings(document))

    def findings(self, document: bytes) -> tuple[Finding, ...]:
        """Every failed rule, fatal and warning, in the order the layers report them."""
        with self._lock:
            return tuple(self._findings(document))

    def _findings(self, document: bytes) -> list[Finding]:
        try:
            tree = etree.fromstring(document, self._parser).getroottree()
        except etree.XMLSyntaxError as exc:
            return [Finding("XML", "fatal", str(exc), "/")]
        info = tree.docinfo
        # SaxonC would load an external DTD named here: refuse any DOCTYPE (UBL has none).
        doctype: str = info.doctype  # type: ignore[union-attr]  # missing from lxml-stubs
        if doctype:
            return [Finding("XML", "fatal", "a DOCTYPE is not allowed in a UBL document", "/")]
        root = etree.QName(tree.getroot())
        if _UBL_NAMESPACES.get(root.localname) != root.namespace:
            text = f"root element {root.text} is neither a UBL 2.1 Invoice nor a CreditNote"
            return [Finding("ROOT", "fatal", text, "/")]
        schema = self._schemas[root.localname]
        findings: list[Finding] = []
        if not schema.validate(tree):
            errors = cast("Iterable[Any]", schema.error_log)  # lxml-stubs omit its iterator
            findings += [Finding("XSD", "fatal", e.message, f"line {e.line}") for e in errors]
        try:
            node = self._saxon.parse_xml(xml_text=document.decode(info.encoding or "utf-8"))
            reports = [rules.transform_to_string(xdm_node=node) for rules in self._rules]
        except PySaxonApiError as exc:
            return [*findings, Finding("SAXON", "fatal", str(exc), "/")]
        for report in reports:
            svrl = etree.fromstring(report.encode("utf-8"))
            for element in svrl.iter(f"{_SVRL}failed-assert", f"{_SVRL}successful-report"):
                text = " ".join((element.findtext(f"{_SVRL}text") or "").split())
                findings.append(
                    Finding(
                        rule=element.get("id") or "?",
                        flag=element.get("flag") or "fatal",
                        text=text,
                        location=element.get("location") or "",
                    )
                )
        return findings
