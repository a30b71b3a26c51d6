"""The console's pure parts: the dashboards' figures, the charts, roles, where a login may lead, and
whether a thread's dispute is open."""

from __future__ import annotations

from datetime import date

from fordring.common.v1 import common_pb2 as cpb
from fordring.dispatcher.v1 import dispatcher_pb2 as dpb
from fordring.ledger.v1 import ledger_pb2 as pb
from fordring.ledger.v1 import notes_pb2 as npb
from fordring.matcher.v1 import matcher_pb2 as mpb

from services.portal.console.accounts import allows
from services.portal.console.charts import Bar, bar_chart
from services.portal.console.figures import bucket, figures, was_late
from services.portal.console.login import safe_next
from services.portal.console.view import open_dispute

TODAY = date(2026, 12, 1)


def invoice(
    customer: str, status: int, *, due: str, balance: int = 0, issued: str = "2026-11-01", **kw: object
) -> pb.Invoice:
    return pb.Invoice(
        customer_id=customer,
        customer_name=f"Kunde {customer}",
        status=status,  # type: ignore[arg-type]
        due_date=due,
        issue_date=issued,
        currency="NOK",
        gross_total=cpb.Money(minor_units=100_00, currency="NOK"),
        balance=cpb.Money(minor_units=balance, currency="NOK"),
        **kw,  # type: ignore[arg-type]
    )


def test_aging_buckets_by_days_past_due() -> None:
    assert [bucket(date(2026, 12, d), TODAY) for d in (1, 2)] == ["c.not_due", "c.not_due"]
    assert bucket(date(2026, 11, 30), TODAY) == "1-30"
    assert bucket(date(2026, 10, 1), TODAY) == "61-90"
    assert bucket(date(2026, 1, 1), TODAY) == "90+"


def test_late_is_paid_after_the_due_date_reminded_or_still_open_past_it() -> None:
    paid_late = invoice(
        "a",
        pb.INVOICE_STATUS_PAID,
        due="2026-11-10",
        allocations=[pb.Allocation(paid_on="2026-11-12", amount_minor=100_00)],
    )
    paid_on_time = invoice(
        "a",
        pb.INVOICE_STATUS_PAID,
        due="2026-11-10",
        allocations=[pb.Allocation(paid_on="2026-11-10", amount_minor=100_00)],
    )
    reminded = invoice("a", pb.INVOICE_STATUS_REMINDED, due="2026-11-10", balance=100_00, dunning_stage=1)
    open_not_due = invoice("a", pb.INVOICE_STATUS_OPEN, due="2026-12-10", balance=100_00)
    assert [was_late(i, TODAY) for i in (paid_late, paid_on_time, reminded, open_not_due)] == [
        True,
        False,
        True,
        False,
    ]


def test_the_dashboards_figures() -> None:
    invoices = [
        invoice("a", pb.INVOICE_STATUS_REMINDED, due="2026-11-10", balance=100_00, dunning_stage=1),
        invoice("a", pb.INVOICE_STATUS_OVERDUE, due="2026-11-20", balance=50_00),
        invoice(
            "b",
            pb.INVOICE_STATUS_PAID,
            due="2026-11-20",
            delivery=pb.Delivery(channel=pb.CHANNEL_EMAIL, deliveries=2),
        ),
        invoice("b", pb.INVOICE_STATUS_OPEN, due="2026-12-20", balance=100_00, issued="2026-01-01"),
    ]
    stats = [dpb.ChannelStats(channel="email", deliveries=4, share_paid_before_due=0.75, paid=4)]
    payments = [
        mpb.Payment(status="matched", method="kid"),
        mpb.Payment(status="matched", method="kid"),
        mpb.Payment(status="resolved", method="manual"),
        mpb.Payment(status="review", method="none"),
    ]
    shown = figures(invoices, stats, payments, TODAY)
    assert shown.invoices == 4
    assert {b.label: b.value for b in shown.aging} == {
        "c.not_due": 100_00,
        "1-30": 150_00,
        "31-60": 0,
        "61-90": 0,
        "90+": 0,
    }
    # 250 kr open against 300 kr of sales in the last 90 days.
    assert shown.dso_days == 75.0
    assert [(b.label, b.text) for b in shown.paid_before_due] == [("email", "75 % of 4")]
    assert [(b.label, b.text) for b in shown.fallback] == [("email", "100 % of 1")]
    assert [(b.label, b.value) for b in shown.matched_by_method] == [("kid", 2), ("manual", 1)]
    assert shown.automatic_rate == "50 %"
    assert [(b.label, b.value) for b in shown.reminders_by_stage] == [("c.stage.1", 1)]
    assert [(c.customer_id, c.late, c.invoices) for c in shown.repeatedly_late] == [("a", 2, 2)]


def test_a_chart_escapes_what_it_draws() -> None:
    svg = str(bar_chart("Kunder <b>", [Bar("<script>alert(1)</script>", 3), Bar("ok & fine", 1)]))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "ok &amp; fine" in svg
    assert 'role="img"' in svg
    assert "No data yet" in str(bar_chart("Empty", []))


def test_roles_each_allow_what_the_ones_before_do() -> None:
    assert allows("admin", "operator")
    assert allows("operator", "customer_service")
    assert not allows("customer_service", "operator")
    assert not allows("operator", "admin")
    assert not allows("root", "customer_service")


def test_a_login_leads_only_into_the_console() -> None:
    assert safe_next("/console/invoices/1?x=2") == "/console/invoices/1?x=2"
    for elsewhere in ("https://evil.example/console", "//evil.example/console", "/i/abc", "/console\\@evil"):
        assert safe_next(elsewhere) == "/console"


def test_a_dispute_is_open_until_a_resolution_follows_it() -> None:
    def note(kind: int, at: str) -> npb.InvoiceNote:
        return npb.InvoiceNote(kind=kind, created_at=at)  # type: ignore[arg-type]

    disputed = note(npb.NOTE_KIND_DISPUTE, "2026-11-01T10:00:00Z")
    resolved = note(npb.NOTE_KIND_DISPUTE_RESOLVED, "2026-11-02T10:00:00Z")
    again = note(npb.NOTE_KIND_DISPUTE, "2026-11-03T10:00:00Z")
    assert not open_dispute([])
    assert open_dispute([disputed])
    assert not open_dispute([resolved, disputed])
    assert open_dispute([again, resolved, disputed])
