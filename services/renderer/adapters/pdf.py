"""The PDF of a document, by Typst: one compiler per renderer, reused for every document.

Chosen by measurement (bench/renderer_pdf.py, one core): a one-page 8-line invoice with its QR code
takes ~15 ms with a warm Typst compiler (~65 a second), where WeasyPrint 70 needs ~400 ms for the
same document as HTML (2.5 a second). The view goes in as
JSON (sys.inputs), every text already written out by `formatting.present`; the logo as a file in the
renderer's own work folder, named by its content's hash; the QR code as SVG text in the JSON.

Archival PDF/A-2b whenever every character has a glyph in the shipped fonts (Inter, Latin, Greek and
Cyrillic); a document with text no shipped font can draw (CJK, Arabic, emoji) cannot be PDF/A and is
rendered as a plain PDF instead, glyphs missing, rather than not at all.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import threading
import weakref
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

import typst

from services.renderer.domain.formatting import present
from services.renderer.domain.model import DocumentView

RENDERER_DIR = Path(__file__).resolve().parent.parent
FONTS_DIR = RENDERER_DIR / "fonts"
TEMPLATES_DIR = RENDERER_DIR / "templates"
TEMPLATE = "document.typ"
PdfStandard = Literal["a-2b", "a-3b"]
_LOGO_SUFFIX = {"image/png": "png", "image/svg+xml": "svg"}


class PdfError(RuntimeError):
    """Typst could not lay out a document (the message carries Typst's own)."""


class PdfRenderer:
    """Renders DocumentViews to PDF bytes. Thread-safe (one document at a time per renderer: the
    compiler is not re-entrant); make one per worker process and close it at shutdown."""

    def __init__(
        self,
        *,
        fonts_dir: Path = FONTS_DIR,
        templates_dir: Path = TEMPLATES_DIR,
        work_dir: Path | None = None,
        standard: PdfStandard | None = "a-2b",
    ) -> None:
        self._work_dir = Path(tempfile.mkdtemp(prefix="fordring-pdf-")) if work_dir is None else work_dir
        # A folder the renderer made goes when it is closed, or at the latest when it is collected.
        self._cleanup = (
            weakref.finalize(self, shutil.rmtree, self._work_dir, ignore_errors=True)
            if work_dir is None
            else None
        )
        self._work_dir.mkdir(parents=True, exist_ok=True)
        (self._work_dir / "logos").mkdir(exist_ok=True)
        shutil.copyfile(templates_dir / TEMPLATE, self._work_dir / TEMPLATE)
        self._standard = standard
        self._lock = threading.Lock()
        self._logos: set[str] = set()
        # System fonts are left out, so a document looks the same on every machine.
        fonts = typst.Fonts(
            include_system_fonts=False, include_embedded_fonts=True, font_paths=[str(fonts_dir)]
        )
        self._compiler = typst.Compiler(
            str(self._work_dir / TEMPLATE),
            root=str(self._work_dir),
            font_paths=fonts,
            ignore_system_fonts=True,
        )

    def render(self, view: DocumentView) -> bytes:
        """The document as PDF (PDF/A-2b where its text allows); DocumentError for an unlawful view."""
        content, _ = self.render_with_standard(view)
        return content

    def render_with_standard(self, view: DocumentView) -> tuple[bytes, str | None]:
        """The PDF and the standard it meets ("a-2b"), or None when it had to be a plain PDF."""
        data = asdict(present(view))
        # The document's own date as the creation date: the same view gives the same bytes.
        timestamp = datetime(view.issue_date.year, view.issue_date.month, view.issue_date.day, tzinfo=UTC)
        with self._lock:
            data["logo"] = self._logo_path(view)
            try:
                return self._compile_archival(data, timestamp)
            except PdfError:
                if not data["logo"]:
                    raise
            # A logo Typst cannot read (a corrupt PNG, an SVG it does not understand) is left out
            # rather than holding the document back.
            data["logo"] = ""
            return self._compile_archival(data, timestamp)

    def _compile_archival(self, data: dict[str, object], timestamp: datetime) -> tuple[bytes, str | None]:
        inputs = {"data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}
        if self._standard is not None:
            try:
                return self._compile(inputs, timestamp, self._standard), self._standard
            except typst.TypstError as error:
                if "PDF/A" not in str(error):
                    raise PdfError(f"Typst: {error}") from error
        try:
            return self._compile(inputs, timestamp, None), None
        except typst.TypstError as error:
            raise PdfError(f"Typst: {error}") from error

    def _compile(self, inputs: dict[str, str], timestamp: datetime, standard: PdfStandard | None) -> bytes:
        result = self._compiler.compile(
            format="pdf", sys_inputs=inputs, pdf_standards=standard or [], timestamp=timestamp
        )
        if not isinstance(result, bytes):
            raise PdfError(f"Typst returned {type(result).__name__}, not one PDF")
        return result

    def _logo_path(self, view: DocumentView) -> str:
        """The logo's path inside the work folder ("" when there is none), written once per content."""
        seller = view.seller
        suffix = _LOGO_SUFFIX.get(seller.logo_media_type)
        if not seller.logo or suffix is None:
            return ""
        name = f"{hashlib.sha256(seller.logo).hexdigest()}.{suffix}"
        if name not in self._logos:
            path = self._work_dir / "logos" / name
            if not path.exists():
                partial = path.with_suffix(".part")
                partial.write_bytes(seller.logo)
                partial.replace(path)
            self._logos.add(name)
        return f"/logos/{name}"

    def close(self) -> None:
        """Remove the work folder, if the renderer made it."""
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> PdfRenderer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
