"""The document as HTML: the invoice page the portal serves, and the HTML body of its e-mail.

Self-contained: styles inline, the logo as a data: URI, the QR code as inline SVG drawn here; the
page's Content-Security-Policy forbids every request, so nothing a customer opens reaches a third
party. Every text from the view is escaped.
"""

from __future__ import annotations

import base64
from html import escape

from services.renderer.domain.formatting import Pair, Presentation, TotalRow, long_date, present
from services.renderer.domain.messages import email_subject, wording
from services.renderer.domain.model import MESSAGE_KINDS, DocumentView
from services.renderer.domain.texts import text

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_IMAGE_TYPES = frozenset({"image/png", "image/svg+xml"})


def _e(value: str) -> str:
    return escape(value, quote=True)


def _lines_html(values: tuple[str, ...]) -> str:
    return "<br>".join(_e(value) for value in values)


def _logo(view: DocumentView) -> str:
    seller = view.seller
    if not seller.logo or seller.logo_media_type not in _IMAGE_TYPES:
        return f'<div class="name">{_e(seller.legal_name)}</div>'
    # An SVG shown through <img> runs no script and loads nothing.
    data = base64.b64encode(seller.logo).decode("ascii")
    return (
        f'<img class="logo" alt="{_e(seller.legal_name)}" src="data:{seller.logo_media_type};base64,{data}">'
    )


def _pair(pair: Pair, css: str = "") -> str:
    return (
        f'<div class="item {css}"><div class="label">{_e(pair.label)}</div>'
        f'<div class="value">{_e(pair.value)}</div></div>'
    )


def _total_rows(rows: tuple[TotalRow, ...]) -> str:
    out = []
    for row in rows:
        if row.style == "heading":
            out.append(f'<tr class="heading"><th colspan="2">{_e(row.label)}</th></tr>')
        else:
            label, value = _e(row.label), _e(row.value)
            out.append(f'<tr class="{_e(row.style)}"><td>{label}</td><td class="num">{value}</td></tr>')
    return "".join(out)


_PAGE_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f6;color:#1a1a1a;
font:15px/1.45 -apple-system,"Segoe UI",Roboto,Inter,Arial,sans-serif}
main{max-width:860px;margin:0 auto;background:#fff;padding:28px 32px 40px}
header{display:flex;justify-content:space-between;align-items:center;gap:16px}
.logo{max-height:56px;max-width:240px}
.name{font-weight:700;font-size:20px;color:var(--accent)}
h1{margin:0;font-size:28px;color:var(--accent)}
.parties{display:flex;justify-content:space-between;gap:24px;margin:24px 0;flex-wrap:wrap}
.facts{border-collapse:collapse}
.facts th{font-weight:400;color:#5f5f5f;text-align:left;padding:2px 16px 2px 0}
.facts td{text-align:right}
.pay{display:flex;gap:24px;justify-content:space-between;align-items:flex-start;background:var(--tint);
border-left:4px solid var(--accent);border-radius:3px;padding:18px 22px;margin:8px 0 24px;flex-wrap:wrap}
.main{flex:1;min-width:260px}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px 28px}
@media (max-width:560px){.grid{grid-template-columns:1fr}main{padding:18px 14px 28px}.no{display:none}}
.label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#5f5f5f}
.value{font-weight:700;font-size:20px;white-space:nowrap;font-variant-numeric:tabular-nums}
.amount .value{font-size:30px}
.qr{text-align:center;font-size:12px;color:#5f5f5f}
.qr svg{width:150px;height:150px;display:block}
.note{font-size:13px;color:#5f5f5f;margin-top:10px}
.credit-text{font-size:18px;font-weight:700;margin-bottom:8px}
table.lines{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
table.lines th{background:var(--accent);color:#fff;text-align:left;padding:6px 8px;font-size:13px}
table.lines td{padding:6px 8px;vertical-align:top;border-bottom:1px solid #ececec}
table.lines tr:nth-child(even) td{background:#f7f7f7}
.num{text-align:right;white-space:nowrap}
table.lines th.num{text-align:right}
.desc{white-space:pre-line;overflow-wrap:break-word;min-width:9em}
.scroll{overflow-x:auto}
table.totals{margin:16px 0 0 auto;border-collapse:collapse;min-width:320px;font-variant-numeric:tabular-nums}
table.totals td{padding:4px 0 4px 24px}
table.totals td:first-child{padding-left:0}
tr.strong td{font-weight:700;font-size:17px;border-top:1.5px solid #333}
tr.heading th{text-align:left;color:var(--accent);padding-top:14px}
.legal{border-left:3px solid var(--accent);padding:4px 14px;margin:20px 0}
footer{margin-top:36px;padding-top:12px;border-top:1px solid #ddd;font-size:12px;color:#5f5f5f;
display:flex;gap:24px;flex-wrap:wrap}
@media print{body{background:#fff}main{padding:0}}
"""


def render_page(view: DocumentView) -> str:
    """The invoice page: one HTML document, no external requests (DocumentError for an unlawful view)."""
    shown = present(view)
    accent = shown.accent
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{_e(shown.language)}"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(shown.document_name)}</title>",
        f"<style>:root{{--accent:{accent};--tint:{accent}17}}{_PAGE_CSS}</style></head><body><main>",
        f"<header>{_logo(view)}<h1>{_e(shown.title)}</h1></header>",
        _parties(shown),
        _payment(shown),
        _credit(shown),
        _dunning(shown),
        _lines(shown),
        f'<table class="totals">{_total_rows(shown.totals)}</table>' if shown.totals else "",
        _footer(shown),
        "</main></body></html>",
    ]
    return "".join(parts)


def _parties(shown: Presentation) -> str:
    facts = "".join(f"<tr><th>{_e(f.label)}</th><td>{_e(f.value)}</td></tr>" for f in shown.facts)
    buyer = f"<strong>{_e(shown.buyer.name)}</strong><br>{_lines_html(shown.buyer.lines)}"
    return f'<section class="parties"><div>{buyer}</div><table class="facts">{facts}</table></section>'


def _payment(shown: Presentation) -> str:
    box = shown.payment
    if box is None:
        return ""
    items = [_pair(box.amount, "amount")]
    if box.due is not None:
        items.append(_pair(box.due))
    if box.reference is not None:
        items.append(_pair(box.reference))
    items.extend(_pair(account) for account in box.accounts)
    note = f'<div class="note">{_e(box.note)}</div>' if box.note else ""
    qr = ""
    if shown.qr is not None:
        # Drawn by services.renderer.domain.qr from the payload alone: no text of the view inside.
        qr = f'<div class="qr">{shown.qr.svg}<div>{_e(shown.qr.caption)}</div></div>'
    grid = f'<div class="grid">{"".join(items)}</div>'
    return f'<section class="pay"><div class="main">{grid}{note}</div>{qr}</section>'


def _credit(shown: Presentation) -> str:
    credit = shown.credit
    if credit is None:
        return ""
    items = [_pair(credit.amount, "amount")]
    if credit.reason is not None:
        items.append(_pair(credit.reason))
    return (
        f'<section class="pay"><div class="main"><div class="credit-text">{_e(credit.text)}</div>'
        f'<div class="grid">{"".join(items)}</div><div class="note">{_e(credit.note)}</div></div></section>'
    )


def _dunning(shown: Presentation) -> str:
    dunning = shown.dunning
    if dunning is None:
        return ""
    return (
        f'<table class="totals" style="margin-left:0;width:100%">{_total_rows(dunning.rows)}</table>'
        f'<p class="legal">{_e(dunning.legal)}</p>'
    )


def _lines(shown: Presentation) -> str:
    if not shown.lines:
        return ""
    c = shown.columns
    head = (
        f"<tr><th class='no'>{_e(c.number)}</th><th>{_e(c.description)}</th>"
        f"<th class='num'>{_e(c.quantity)}</th>"
        f"<th>{_e(c.unit)}</th><th class='num'>{_e(c.unit_price)}</th><th class='num'>{_e(c.vat_rate)}</th>"
        f"<th class='num'>{_e(c.amount)}</th></tr>"
    )
    rows = "".join(
        f'<tr><td class="num no">{_e(line.number)}</td><td class="desc">{_e(line.description)}</td>'
        f'<td class="num">{_e(line.quantity)}</td><td>{_e(line.unit)}</td>'
        f'<td class="num">{_e(line.unit_price)}</td>'
        f'<td class="num">{_e(line.vat_rate)}</td><td class="num">{_e(line.amount)}</td></tr>'
        for line in shown.lines
    )
    return (
        f'<div class="scroll"><table class="lines"><thead>{head}</thead><tbody>{rows}</tbody></table></div>'
    )


def _footer(shown: Presentation) -> str:
    seller = f"<strong>{_e(shown.seller.name)}</strong><br>{_lines_html(shown.seller.lines)}"
    extra = (shown.seller_footer,) if shown.seller_footer else ()
    return (
        f"<footer><div>{seller}</div><div>{_lines_html(shown.seller_contact)}</div>"
        f"<div>{_lines_html(shown.seller_legal + extra)}</div></footer>"
    )


def render_email_html(view: DocumentView) -> str:
    """The HTML body of the document's e-mail: tables and inline styles (as mail clients need), no
    images, a button to the document's page."""
    shown = present(view, with_qr=False)
    language = view.language
    accent = shown.accent
    font = "font-family:Arial,Helvetica,sans-serif;"
    rows: list[Pair] = []
    lead_amount = ""
    if shown.payment is not None:
        box = shown.payment
        lead_amount = box.amount.value
        rows = [box.amount, *([box.due] if box.due else []), *([box.reference] if box.reference else [])]
        rows.extend(box.accounts)
    elif shown.credit is not None:
        lead_amount = shown.credit.amount.value
        rows = [shown.credit.amount]
    details = "".join(
        f'<tr><td style="{font}padding:4px 16px 4px 0;color:#5f5f5f">{_e(row.label)}</td>'
        f'<td style="{font}padding:4px 0;font-weight:bold;font-size:16px">{_e(row.value)}</td></tr>'
        for row in rows
    )
    due = long_date(view.due_date, language) if view.due_date is not None else ""
    lead = text(
        f"email.lead.{wording(view)}",
        language,
        number=view.number,
        seller=view.seller.legal_name,
        amount=lead_amount,
        due_date=due,
        credited=view.credits.number if view.credits is not None else "",
    )
    button_label = text("label.view_online" if view.kind == "credit_note" else "label.pay_online", language)
    button = ""
    if view.payment_link:
        button = (
            f'<p style="margin:24px 0"><a href="{_e(view.payment_link)}" style="{font}background:{accent};'
            f"color:#ffffff;text-decoration:none;padding:12px 22px;border-radius:4px;font-weight:bold;"
            f'display:inline-block">{_e(button_label)}</a></p>'
        )
    if shown.dunning is not None:
        # A reminder or notice sent by e-mail says all the law asks of it in the e-mail itself.
        lead = shown.dunning.legal
    signature = _e(text("email.signature", language, seller=view.seller.legal_name)).replace("\n", "<br>")
    attachment_note = (
        "" if view.kind in MESSAGE_KINDS else f"<p>{_e(text('email.attachment_note', language))}</p>"
    )
    footer = _lines_html((shown.seller.name, *shown.seller.lines, *shown.seller_legal))
    return (
        f'<!DOCTYPE html><html lang="{_e(language)}"><head><meta charset="utf-8">'
        f"<title>{_e(email_subject(view))}</title></head>"
        f'<body style="margin:0;padding:0;background:#f3f4f6">'
        f'<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f3f4f6">'
        f'<tr><td align="center" style="padding:24px 12px">'
        f'<table role="presentation" width="600" cellpadding="0" cellspacing="0" '
        f'style="max-width:600px;width:100%;background:#ffffff;border-top:4px solid {accent}">'
        f'<tr><td style="{font}padding:24px 28px;color:#1a1a1a;font-size:15px;line-height:1.5">'
        f'<p style="margin:0 0 4px;font-size:13px;color:#5f5f5f">{_e(view.seller.legal_name)}</p>'
        f'<h1 style="{font}margin:0 0 16px;font-size:22px;color:{accent}">'
        f"{_e(shown.title)} {_e(view.number)}</h1>"
        f"<p>{_e(text('email.greeting', language, name=view.buyer.name))}</p>"
        f"<p>{_e(lead)}</p>"
        f'<table role="presentation" cellpadding="0" cellspacing="0">{details}</table>'
        f"{button}"
        f"{attachment_note}"
        f"<p>{signature}</p>"
        f'<p style="font-size:12px;color:#777;border-top:1px solid #e5e5e5;padding-top:12px">{footer}</p>'
        f"</td></tr></table></td></tr></table></body></html>"
    )
