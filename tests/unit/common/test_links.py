"""Invoice links: signed, expiring, and the old kind (no expiry) still read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common.links import invoice_from_token, invoice_link, invoice_token, read_token

SECRET = "s" * 32
INVOICE = "0190a5e4-7c1f-7d2a-9c3b-1234567890ab"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_a_link_names_its_invoice_until_it_expires() -> None:
    token = invoice_token(INVOICE, SECRET, expires=NOW + timedelta(days=490))
    found = read_token(token, SECRET)
    assert found is not None
    assert found.invoice_id == INVOICE
    assert not found.expired(NOW)
    assert found.expired(NOW + timedelta(days=491))
    assert len(token) < 45  # it goes into SMS texts


def test_an_old_link_without_expiry_still_reads() -> None:
    old = invoice_token(INVOICE, SECRET)
    assert old.count(".") == 1
    found = read_token(old, SECRET)
    assert found is not None
    assert found.expires is None
    assert not found.expired(NOW + timedelta(days=10_000))
    assert invoice_from_token(old, SECRET) == INVOICE


def test_tampered_links_are_refused() -> None:
    token = invoice_token(INVOICE, SECRET, expires=NOW + timedelta(days=30))
    ident, expiry, signature = token.split(".")
    later = format(int(expiry, 36) + 86400 * 365, "x")  # any other expiry, same signature
    other = invoice_token("0190a5e4-7c1f-7d2a-9c3b-1234567890ac", SECRET).split(".")[0]
    for bad in (
        f"{ident}.{later}.{signature}",
        f"{other}.{expiry}.{signature}",
        f"{ident}.{expiry}.{signature[:-1]}A",
        f"{ident}.{signature}",
        f"{ident}.{expiry}",
        token + ".x",
        "",
        "...",
        "%%%.1.2",
    ):
        assert read_token(bad, SECRET) is None, bad
    assert read_token(token, "another secret" * 3) is None


def test_a_link_is_the_portal_address_and_the_token() -> None:
    link = invoice_link("https://faktura.example/", INVOICE, SECRET, expires=NOW)
    assert link.startswith("https://faktura.example/i/")
    assert read_token(link.rsplit("/", 1)[1], SECRET) is not None
