"""A day's batch from a made-up Norwegian ERP: consumers and businesses, realistic lines, NOK in øre.

Deterministic for a (count, seed, today): tests and benchmarks reuse it. Returns the dicts of the
`fordring invoices import` JSONL format.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

FIRST_NAMES = (
    "Ola",
    "Kari",
    "Per",
    "Ingrid",
    "Lars",
    "Anne",
    "Knut",
    "Marit",
    "Jon",
    "Liv",
    "Nils",
    "Solveig",
    "Emma",
    "Jakob",
    "Nora",
    "Filip",
    "Sofie",
    "Henrik",
    "Ella",
    "Magnus",
    "Maja",
    "Sindre",
    "Ida",
    "Eirik",
    "Thea",
    "Håkon",
    "Sigrid",
    "Øystein",
    "Åse",
    "Bjørn",
    "Ragnhild",
    "Tor",
    "Astrid",
    "Even",
)
LAST_NAMES = (
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Johnsen",
    "Pettersen",
    "Eriksen",
    "Berg",
    "Haugen",
    "Hagen",
    "Johannessen",
    "Andreassen",
    "Jacobsen",
    "Dahl",
    "Jørgensen",
    "Halvorsen",
    "Lund",
    "Moen",
    "Sæther",
    "Bakken",
    "Strand",
    "Solberg",
    "Løken",
    "Fjeld",
    "Kvalheim",
    "Aas",
    "Vik",
    "Nordby",
)
STREETS = (
    "Storgata",
    "Kirkegata",
    "Kongens gate",
    "Dronningens gate",
    "Skolegata",
    "Parkveien",
    "Strandveien",
    "Fjordveien",
    "Sjøgata",
    "Bjørkeveien",
    "Granveien",
    "Furuveien",
    "Solbakken",
    "Industriveien",
    "Havnegata",
    "Elvegata",
    "Torggata",
    "Markveien",
    "Prinsens gate",
    "Nedre Slottsgate",
    "Holmenveien",
)
# (postal code, city): real Norwegian postal codes.
POSTAL_PLACES = (
    ("0150", "OSLO"),
    ("0250", "OSLO"),
    ("0458", "OSLO"),
    ("0560", "OSLO"),
    ("0661", "OSLO"),
    ("1337", "SANDVIKA"),
    ("1366", "LYSAKER"),
    ("1530", "MOSS"),
    ("1606", "FREDRIKSTAD"),
    ("2000", "LILLESTRØM"),
    ("2317", "HAMAR"),
    ("2815", "GJØVIK"),
    ("3015", "DRAMMEN"),
    ("3111", "TØNSBERG"),
    ("3510", "HØNEFOSS"),
    ("4006", "STAVANGER"),
    ("4307", "SANDNES"),
    ("4610", "KRISTIANSAND S"),
    ("5003", "BERGEN"),
    ("5015", "BERGEN"),
    ("5501", "HAUGESUND"),
    ("6002", "ÅLESUND"),
    ("6413", "MOLDE"),
    ("7010", "TRONDHEIM"),
    ("7030", "TRONDHEIM"),
    ("8006", "BODØ"),
    ("8514", "NARVIK"),
    ("9008", "TROMSØ"),
    ("9900", "KIRKENES"),
)
COMPANY_STEMS = (
    "Nordlys",
    "Fjord",
    "Vestland",
    "Polar",
    "Fossekall",
    "Brattli",
    "Havbris",
    "Trollheimen",
    "Midnattsol",
    "Kystlinje",
    "Skogli",
    "Granli",
    "Fjellstue",
    "Lysaker",
    "Bølgen",
    "Varde",
    "Nidaros",
    "Bjørgvin",
)
COMPANY_TRADES = (
    "Bygg",
    "Rør",
    "Elektro",
    "Regnskap",
    "Transport",
    "Eiendom",
    "Konsult",
    "Maskin",
    "Handel",
    "Media",
    "Catering",
    "Tannhelse",
    "Data",
    "Marine",
    "Interiør",
    "Sikkerhet",
)
COMPANY_FORMS = ("AS", "AS", "AS", "AS", "ANS", "DA")
EMAIL_DOMAINS = ("gmail.com", "online.no", "hotmail.com", "outlook.com", "icloud.com", "live.no")


@dataclass(frozen=True)
class Item:
    description: str
    vat_rate: str
    min_price_kr: int
    max_price_kr: int
    quantities: tuple[str, ...] = ("1",)
    unit_code: str = "EA"


# VAT rates as Norway uses them: 25 general, 15 food, 12 transport/hotel/cinema, 0 exempt or zero-rated.
CONSUMER_ITEMS = (
    Item("Strøm, forbruk forrige måned", "25", 300, 2400),
    Item("Nettleie", "25", 250, 900),
    Item("Bredbånd 500/500, månedsabonnement", "25", 499, 899),
    Item("Mobilabonnement", "25", 199, 549),
    Item("Treningssenter, medlemskap", "25", 349, 699),
    Item("Matkasse familie, uke", "15", 899, 1499, ("1", "2")),
    Item("Dagligvarer, levering", "15", 250, 1800),
    Item("Drosjetur", "12", 180, 900),
    Item("Hotellovernatting", "12", 990, 2490, ("1", "2", "3"), "DAY"),
    Item("Kinobilletter", "12", 140, 160, ("2", "3", "4")),
    Item("Avisabonnement, digitalt", "0", 199, 399),
    Item("Tannlegebehandling", "0", 750, 4500),
    Item("Vaktmestertjenester", "25", 650, 750, ("1", "1.5", "2", "3"), "HUR"),
)
BUSINESS_ITEMS = (
    Item("Konsulenttimer, systemutvikling", "25", 1150, 1650, ("7.5", "15", "22.5", "37.5"), "HUR"),
    Item("Regnskapstjenester, månedlig", "25", 2500, 9500),
    Item("Programvarelisens, per bruker", "25", 99, 450, ("5", "10", "25", "40")),
    Item("Kontorrekvisita", "25", 120, 2500, ("1", "2", "5")),
    Item("Frakt", "25", 150, 1200),
    Item("Leie av lift", "25", 1200, 2500, ("1", "2", "5"), "DAY"),
    Item("Rørleggerarbeid", "25", 850, 1100, ("2", "4", "6.5"), "HUR"),
    Item("Elektrikerarbeid", "25", 800, 1050, ("1.5", "3", "8"), "HUR"),
    Item("Matvarer til kantine", "15", 2000, 12000),
    Item("Persontransport, buss til firmatur", "12", 4500, 15000),
    Item("Hotellrom, kurs og konferanse", "12", 1290, 2190, ("4", "10", "18"), "DAY"),
    Item("Kurs i førstehjelp (avgiftsfritt)", "0", 1500, 3500, ("1", "4", "8")),
    Item("Catering, servering", "25", 180, 320, ("12", "20", "45")),
)


def generate_invoices(
    count: int, seed: int, today: date, *, customers: int | None = None
) -> list[dict[str, Any]]:
    """`count` invoices for `customers` customers (default: about count/3); due dates spread on both
    sides of `today`."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    buyers = _customers(rng, customers or max(1, count // 3))
    batch = f"DEMO-{today:%Y%m%d}-{seed}"
    invoices: list[dict[str, Any]] = []
    for index in range(count):
        buyer = rng.choice(buyers)
        business = buyer["kind"] == "business"
        issue_date = today - timedelta(days=_days_ago(rng))
        terms = rng.choice((30, 30, 14)) if business else rng.choice((10, 14, 14, 20))
        items = BUSINESS_ITEMS if business else CONSUMER_ITEMS
        invoice: dict[str, Any] = {
            "external_id": f"{batch}-{index + 1:05d}",
            "customer": copy.deepcopy(buyer),
            "issue_date": issue_date.isoformat(),
            "due_date": (issue_date + timedelta(days=terms)).isoformat(),
            "currency": "NOK",
            "lines": [_line(rng, rng.choice(items)) for _ in range(rng.choice((1, 1, 2, 2, 3, 4)))],
        }
        if business:
            invoice["buyer_reference"] = rng.choice(
                (f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}", f"PO-{rng.randint(1000, 99999)}")
            )
            if rng.random() < 0.5:
                invoice["order_reference"] = f"ORD-{rng.randint(100000, 999999)}"
            if rng.random() < 0.2:
                invoice["contract_reference"] = (
                    f"AVT-{today.year - rng.randint(0, 3)}-{rng.randint(1, 400):03d}"
                )
        invoices.append(invoice)
    return invoices


def _days_ago(rng: random.Random) -> int:
    """Mostly recent invoices, some older: about half end up past their due date."""
    low, high = rng.choice(
        ((0, 14), (0, 14), (0, 14), (0, 14), (15, 40), (15, 40), (15, 40), (41, 90), (41, 90))
    )
    return rng.randint(low, high)


def _line(rng: random.Random, item: Item) -> dict[str, Any]:
    price_kr = rng.randint(item.min_price_kr, item.max_price_kr)
    ore = rng.choice((0, 0, 0, 50, 90))
    line: dict[str, Any] = {
        "description": item.description,
        "quantity": rng.choice(item.quantities),
        "unit_price_minor": price_kr * 100 + ore,
        "vat_rate": item.vat_rate,
    }
    if item.unit_code != "EA":
        line["unit_code"] = item.unit_code
    return line


def _customers(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [customer(number) for number in rng.sample(range(10000, 100000), count)]


def customer(number: int) -> dict[str, Any]:
    """The customer with this number: always the same one, whichever batch it turns up in."""
    rng = random.Random(f"fordring-demo-customer-{number}")  # noqa: S311 - demo data, not secrets
    return _business(rng, str(number)) if rng.random() < 0.3 else _consumer(rng, str(number))


def _consumer(rng: random.Random, number: str) -> dict[str, Any]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    person: dict[str, Any] = {
        "number": number,
        "name": f"{first} {last}",
        "kind": "consumer",
        "email": f"{_ascii(first)}.{_ascii(last)}{rng.randint(1, 99)}@{rng.choice(EMAIL_DOMAINS)}",
        "phone": _mobile(rng),
        "address": _address(rng),
        "language": "nb",
    }
    if rng.random() < 0.5:
        person["bank_account"] = _bank_account(rng)
    person.update(_channels(number))
    return person


def _channels(number: str) -> dict[str, Any]:
    """A consumer's channel choices and consents (drawn apart, so the rest of them stays as it was):
    most accept e-mail, some SMS, a few have eFaktura or an AvtaleGiro mandate, some nothing (post)."""
    rng = random.Random(f"fordring-demo-channels-{number}")  # noqa: S311 - demo data, not secrets
    consents = {
        "email": rng.random() < 0.7,
        "sms": rng.random() < 0.4,
        "efaktura": rng.random() < 0.15,
        "avtalegiro": rng.random() < 0.08,
    }
    chosen: dict[str, Any] = {"consents": {k: v for k, v in consents.items() if v}}
    if consents["sms"] and rng.random() < 0.15:
        chosen["channels"] = ["sms"]
    return chosen


def _business(rng: random.Random, number: str) -> dict[str, Any]:
    name = f"{rng.choice(COMPANY_STEMS)} {rng.choice(COMPANY_TRADES)} {rng.choice(COMPANY_FORMS)}"
    domain = _ascii(name.rsplit(" ", 1)[0]).replace(".", "-")
    company: dict[str, Any] = {
        "number": number,
        "name": name,
        "kind": "business",
        "org_number": organisation_number(rng),
        "email": f"{rng.choice(('faktura', 'post', 'regnskap'))}@{domain}.no",
        "phone": _mobile(rng),
        "address": _address(rng),
        "language": "nb",
    }
    if rng.random() < 0.7:
        company["bank_account"] = _bank_account(rng)
    return company


# Norwegian mobile series in use (Nkom's numbering plan; 42-44, 45 in part and 49 are not mobile).
_MOBILE_PREFIXES = ("40", "41", "46", "47", "48", "90", "91", "92", "93", "94", "95", "96", "97", "98", "99")


def _mobile(rng: random.Random) -> str:
    return f"+47{rng.choice(_MOBILE_PREFIXES)}{rng.randint(0, 999_999):06d}"


def _address(rng: random.Random) -> dict[str, Any]:
    postal_code, city = rng.choice(POSTAL_PLACES)
    house = f"{rng.randint(1, 120)}{rng.choice(('', '', '', 'A', 'B'))}"
    return {
        "lines": [f"{rng.choice(STREETS)} {house}"],
        "postal_code": postal_code,
        "city": city,
        "country": "NO",
    }


def organisation_number(rng: random.Random) -> str:
    """A valid Norwegian organisation number: 8 digits (starting 8 or 9) and a MOD11 check digit."""
    while True:
        body = f"{rng.choice('89')}{rng.randint(0, 9_999_999):07d}"
        check = _mod11_check(body, (3, 2, 7, 6, 5, 4, 3, 2))
        if check is not None:
            return body + str(check)


def _bank_account(rng: random.Random) -> str:
    """A Norwegian BBAN: 4-digit bank code, 6 digits, and a MOD11 check digit."""
    while True:
        body = f"{rng.choice(('1503', '1607', '3000', '9710', '1254', '1822'))}{rng.randint(0, 999_999):06d}"
        check = _mod11_check(body, (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))
        if check is not None:
            return body + str(check)


def _mod11_check(body: str, weights: tuple[int, ...]) -> int | None:
    """The MOD11 check digit, or None where the scheme has none (remainder 1 gives 10: number unused)."""
    check = (11 - sum(w * int(d) for w, d in zip(weights, body, strict=True)) % 11) % 11
    return None if check == 10 else check


def _ascii(text: str) -> str:
    return text.lower().replace("æ", "ae").replace("ø", "o").replace("å", "a").replace(" ", ".")
