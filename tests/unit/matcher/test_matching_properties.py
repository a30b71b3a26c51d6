"""Properties of decide() over arbitrary payments and open items: money is never invented, lost or
allocated to a closed invoice, and an exact valid KID of an open invoice always pays that invoice."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matcher.domain.matching import allocate, decide
from services.matcher.domain.open_items import OpenItem, OpenItems
from tests.unit.matcher.matching_fixtures import item, payment

STATUSES = ["open", "part_paid", "overdue", "reminded", "paid", "overpaid", "credited", "written_off"]
ACCOUNTS = ["11112222333", "44445555666"]


@st.composite
def open_items(draw: st.DrawFn) -> list[OpenItem]:
    numbers = draw(st.lists(st.integers(1, 400), min_size=1, max_size=25, unique=True))
    found = []
    for n in numbers:
        status = draw(st.sampled_from(STATUSES))
        closed = status in ("paid", "overpaid", "credited", "written_off")
        amount = draw(st.sampled_from([1_000, 2_500, 5_000, 7_500, 10_000])) if not closed else 0
        found.append(
            item(
                n,
                customer=draw(st.sampled_from(["c1", "c2", "c3"])),
                open_minor=amount,
                status=status,
                currency=draw(st.sampled_from(["NOK", "NOK", "NOK", "SEK"])),
                total_minor=draw(st.sampled_from([1_000, 5_000, 10_000])),
            )
        )
    return found


def typo_of(reference: str, position: int, digit: str) -> str:
    position %= len(reference)
    return reference[:position] + digit + reference[position + 1 :]


@st.composite
def payments(draw: st.DrawFn, items: list[OpenItem]) -> object:
    target = draw(st.sampled_from(items))
    reference = draw(
        st.sampled_from(
            [
                "",
                target.kid,
                typo_of(target.kid, draw(st.integers(0, 9)), draw(st.sampled_from("0123456789"))),
                target.kid[:-2] + target.kid[-1] + target.kid[-2],
                target.kid[1:],
                target.invoice_number,
            ]
        )
    )
    text = draw(
        st.sampled_from(["", f"Faktura {target.invoice_number}", f"{target.invoice_number} og 17", "2024"])
    )
    return payment(
        draw(st.integers(1, 40_000)),
        reference=reference,
        free_text=text,
        payer_account=draw(st.sampled_from(["", *ACCOUNTS])),
        payer_name=draw(st.sampled_from(["", "Ola Nordmann"])),
        currency=draw(st.sampled_from(["NOK", "NOK", "SEK"])),
    )


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_money_is_never_invented_lost_or_put_on_a_closed_invoice(data: st.DataObject) -> None:
    items = data.draw(open_items())
    index = OpenItems(
        items, payer_accounts={"c1": ACCOUNTS[:1], "c2": ACCOUNTS[1:]}, payer_names={"c3": ["Ola Nordmann"]}
    )
    p = data.draw(payments(items))
    assert isinstance(p, type(payment(1)))
    d = decide(p, index)
    by_id = {i.invoice_id: i for i in items}
    assert d.allocated_minor <= p.amount_minor
    assert d.credit_minor >= 0
    for invoice_id, amount in d.allocations.items():
        invoice = by_id[invoice_id]
        assert invoice.is_open
        assert invoice.currency == p.currency
        assert 0 < amount <= invoice.open_minor  # no open amount goes negative
    if d.status == "matched":
        assert d.allocated_minor + d.credit_minor == p.amount_minor
        assert len({by_id[i].customer_id for i in d.allocations}) == 1
        assert 0 < d.confidence <= 1
    else:
        assert d.allocations == {}
        assert d.reason


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_an_exact_kid_of_an_open_invoice_pays_that_invoice(data: st.DataObject) -> None:
    items = data.draw(open_items())
    open_ = [i for i in items if i.is_open]
    if not open_:
        return
    target = data.draw(st.sampled_from(open_))
    amount = data.draw(
        st.sampled_from([target.open_minor, target.open_minor // 2 or 1, target.open_minor + 999])
    )
    d = decide(payment(amount, reference=target.kid, currency=target.currency), OpenItems(items))
    assert d.status == "matched"
    assert d.method == "kid"
    assert dict(d.allocations) == {target.invoice_id: min(amount, target.open_minor)}
    assert d.credit_minor == max(0, amount - target.open_minor)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 50_000), max_size=8),
    st.integers(-10, 200_000),
    st.lists(st.booleans(), max_size=8),
)
def test_allocate_never_over_allocates(amounts: list[int], total: int, closed: list[bool]) -> None:
    items = [
        item(
            n + 1, open_minor=a, status="paid" if n < len(closed) and closed[n] else "open", due_days=100 - n
        )
        for n, a in enumerate(amounts)
    ]
    allocations, left = allocate(total, items)
    assert sum(allocations.values()) + left == max(0, total)
    for invoice in items:
        share = allocations.get(invoice.invoice_id, 0)
        assert share <= invoice.open_minor
        assert share == 0 or invoice.is_open
    assert left == 0 or all(allocations.get(i.invoice_id, 0) == i.open_minor for i in items if i.is_open)
