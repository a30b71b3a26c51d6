"""The law on dunning in Norway and Sweden as data: each limit is a rule with an id, what it says, its
source, and its values by period.

Amounts are minor units of the jurisdiction's currency (øre, öre). A rule's values are dated by the
date the law uses to pick them (`dated_by`): the Norwegian fees by the claim's due date ("claims due
from 1 Oct 2020"), the fixed B2B compensation by the day the right to it arises (the day after the due
date). Values DOMAIN.md marks *unverified*, and placeholders where it gives none, carry
`verified=False`: an operator must confirm them (`unverified_periods()` lists them).

The validator (`policy.validate`) and the step decision (`schedule.decide`) name these rules by id; the
rule ids starting `FORDRING.` are Fordring's own structure, not law.
Source of every value: ../shared/DOMAIN.md, "Dunning — Norway" and "Dunning — Sweden".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Final, Literal

Jurisdiction = Literal["NO", "SE"]
DebtorKind = Literal["consumer", "business"]
JURISDICTIONS: Final[tuple[Jurisdiction, ...]] = ("NO", "SE")
DEBTOR_KINDS: Final[tuple[DebtorKind, ...]] = ("consumer", "business")
CURRENCY: Final[Mapping[Jurisdiction, str]] = MappingProxyType({"NO": "NOK", "SE": "SEK"})

Unit = Literal["minor", "days", "count", "percentage_points", "none"]
# The date that picks a rule's value: the claim's due date, or the day the right arises (due date + 1).
DatedBy = Literal["due_date", "right_arises", "none"]


@dataclass(frozen=True, slots=True)
class Period:
    """A rule's value from `valid_from` through `valid_to` (both inclusive; None: open-ended)."""

    value: int
    valid_from: date | None = None
    valid_to: date | None = None
    verified: bool = True
    note: str = ""

    def covers(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_to is None or day <= self.valid_to
        )


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    # None: Fordring's own rule, the same in both jurisdictions.
    jurisdiction: Jurisdiction | None
    says: str
    source: str
    unit: Unit = "none"
    dated_by: DatedBy = "none"
    periods: tuple[Period, ...] = ()

    def period_on(self, day: date) -> Period | None:
        """The period covering `day` (None: the law's value for that day is not in the table)."""
        for period in self.periods:
            if period.covers(day):
                return period
        return None

    def value_on(self, day: date) -> int | None:
        period = self.period_on(day)
        return None if period is None else period.value

    def lowest_from(self, day: date) -> int | None:
        """The lowest value of the periods that cover `day` or any later day (a policy saved on
        `day` must hold for every claim it will meet from then on). None: no such period."""
        values = [p.value for p in self.periods if p.valid_to is None or p.valid_to >= day]
        return min(values) if values else None

    @property
    def cite(self) -> str:
        return f"{self.id} ({self.source})"


# --- Norway: inkassoloven, inkassoforskriften, forsinkelsesrenteloven ------------------------------

NO_INKASSOSATS: Final = Rule(
    "NO.inkassosats",
    "NO",
    "The inkassosats, of which the reminder and inkassovarsel fees are fractions (1/10, from the claims "
    "due on 1 Oct 2020 1/20).",
    "inkassoforskriften §1-1",
    "minor",
    "due_date",
    (
        Period(
            70_000, date(2017, 1, 1), note="DOMAIN.md: 'unchanged since 2017'; the day in 2017 is not given"
        ),
    ),
)
_NO_FEE_PERIODS: Final = (
    # DOMAIN.md: "Claims due up to 2020-09-30: 1/10 = kr 70". Before 2017 the inkassosats is not given,
    # so no fee is known (and none is charged) for claims due before 2017.
    Period(7_000, date(2017, 1, 1), date(2020, 9, 30), note="1/10 of the inkassosats"),
    # DOMAIN.md: "For claims due on or after 2020-10-01: 1/20 = kr 35" (the change of 1 Oct 2020; Sergel
    # and Virke Inkasso confirm kr 35 in 2021 and 2023). docs/domain.md's "from 2025-01-01" is wrong.
    Period(3_500, date(2020, 10, 1), note="1/20 of the inkassosats"),
)
NO_REMINDER_FEE: Final = Rule(
    "NO.reminder_fee.max",
    "NO",
    "A written reminder (purring) may charge at most kr 70 for a claim due up to 30 Sep 2020, kr 35 for "
    "a claim due from 1 Oct 2020.",
    "inkassoforskriften: purregebyr = 1/20 (before 1 Oct 2020 1/10) of the inkassosats in §1-1",
    "minor",
    "due_date",
    _NO_FEE_PERIODS,
)
NO_REMINDER_FEE_DAYS: Final = Rule(
    "NO.reminder_fee.days_after_due",
    "NO",
    "A reminder fee only for a written reminder sent at least 14 days after the due date.",
    "inkassoforskriften (purregebyr)",
    "days",
    periods=(Period(14),),
)
NO_REMINDER_FEE_WRITTEN: Final = Rule(
    "NO.reminder_fee.written",
    "NO",
    "A fee only for a written reminder stating the amount and the claim: a document (e-mail, letter, "
    "eFaktura, EHF), not an SMS alone.",
    "inkassoforskriften (purregebyr)",
)
NO_NOTICE_FEE: Final = Rule(
    "NO.collection_notice_fee.max",
    "NO",
    "An inkassovarsel may charge the reminder fee, on the same terms: kr 35 for a claim due from "
    "1 Oct 2020 (kr 70 before).",
    "inkassoforskriften; inkassoloven §9",
    "minor",
    "due_date",
    _NO_FEE_PERIODS,
)
NO_NOTICE_FEE_DAYS: Final = Rule(
    "NO.collection_notice_fee.days_after_due",
    "NO",
    "An inkassovarsel fee, as a reminder fee, only when it is sent at least 14 days after the due date.",
    "inkassoforskriften (the reminder fee's terms)",
    "days",
    periods=(Period(14),),
)
NO_FEES_PER_CLAIM: Final = Rule(
    "NO.fees.max_per_claim",
    "NO",
    "At most 2 reminder fees, or 1 reminder fee and 1 inkassovarsel fee, per claim before collection "
    "(the betalingsoppfordring that may follow is the collection agency's).",
    "inkassoforskriften §1-3",
    "count",
    periods=(Period(2),),
)
NO_NOTICE_FEES_PER_CLAIM: Final = Rule(
    "NO.collection_notice_fee.max_per_claim",
    "NO",
    "At most 1 inkassovarsel fee per claim.",
    "inkassoforskriften §1-3",
    "count",
    periods=(Period(1),),
)
NO_SECOND_FEE: Final = Rule(
    "NO.fees.second_after_missed_deadline",
    "NO",
    "A second fee only if the debtor missed a deadline of at least 14 days set in the first.",
    "inkassoforskriften §1-3",
    "days",
    periods=(Period(14),),
)
NO_REMINDER_DEADLINE: Final = Rule(
    "NO.reminder.deadline",
    "NO",
    "A reminder gives at least 14 days to pay (a later fee needs a missed deadline of at least 14 days; "
    "Fordring holds every Norwegian reminder to it).",
    "inkassoforskriften §1-3",
    "days",
    periods=(Period(14),),
)
NO_NOTICE_AFTER_DUE: Final = Rule(
    "NO.collection_notice.after_due",
    "NO",
    "An inkassovarsel is sent only after the due date.",
    "inkassoloven §9",
)
NO_NOTICE_DEADLINE: Final = Rule(
    "NO.collection_notice.deadline",
    "NO",
    "An inkassovarsel gives a payment deadline of at least 14 days from sending.",
    "inkassoloven §9",
    "days",
    periods=(Period(14),),
)
NO_NOTICE_WRITTEN: Final = Rule(
    "NO.collection_notice.written",
    "NO",
    "An inkassovarsel is written; electronic sending is allowed when secure (e-mail, eFaktura, EHF), "
    "an SMS alone is not an inkassovarsel.",
    "inkassoloven §9, §3a",
)
NO_NOTICE_BEFORE_HANDOFF: Final = Rule(
    "NO.collection_notice.before_handoff",
    "NO",
    "A claim goes to collection only after an inkassovarsel whose deadline has passed. This cannot be "
    "waived to a consumer's detriment; between businesses it can be varied by agreement.",
    "inkassoloven §9",
)
NO_COMPENSATION: Final = Rule(
    "NO.compensation.amount",
    "NO",
    "Standardkompensasjon from a business debtor, set each half-year, less the reminder fees already "
    "charged on the claim. DOMAIN.md gives no amount for 1 Jul 2021 to 31 Dec 2024: none is charged then.",
    "forsinkelsesrenteloven §3a",
    "minor",
    "right_arises",
    (
        Period(43_000, date(2020, 7, 1), date(2020, 12, 31), verified=False, note="DOMAIN.md: H2 2020"),
        Period(40_000, date(2021, 1, 1), date(2021, 6, 30), verified=False, note="DOMAIN.md: H1 2021"),
        Period(47_000, date(2025, 1, 1), date(2025, 6, 30), verified=False, note="DOMAIN.md: H1 2025"),
        Period(
            47_000,
            date(2025, 7, 1),
            verified=False,
            note="placeholder: DOMAIN.md gives no amount after H1 2025; H1 2025's carried forward until an "
            "operator enters the half-year's",
        ),
    ),
)
NO_COMPENSATION_BUSINESS: Final = Rule(
    "NO.compensation.business_only",
    "NO",
    "Standardkompensasjon only when the debtor is a business, never from a consumer.",
    "forsinkelsesrenteloven §3a",
)
NO_INTEREST: Final = Rule(
    "NO.interest.rate",
    "NO",
    "Forsinkelsesrente, set every half-year (1 Jan / 1 Jul) as Norges Bank's policy rate + at least 8 pp; "
    "12.5 % from 2025-01-01. The rates are interest.NO_RATES.",
    "forsinkelsesrenteloven; FOR-2024-12-19-3279",
)

# --- Sweden ----------------------------------------------------------------------------------------

SE_REMINDER_FEE: Final = Rule(
    "SE.reminder_fee.max",
    "SE",
    "A påminnelseavgift at most 60 SEK.",
    "lag (1981:739)",
    "minor",
    "due_date",
    (Period(6_000, note="DOMAIN.md gives no date from which 60 SEK applies"),),
)
SE_REMINDER_FEE_AGREED: Final = Rule(
    "SE.reminder_fee.agreement",
    "SE",
    "A påminnelseavgift only if it was agreed no later than when the debt arose.",
    "lag (1981:739)",
)
SE_REMINDER_FEES_PER_CLAIM: Final = Rule(
    "SE.reminder_fee.max_per_claim",
    "SE",
    "At most 1 påminnelseavgift per claim. DOMAIN.md is silent on how many: this is Fordring's "
    "conservative reading, to be confirmed.",
    "Fordring practice (unverified); lag (1981:739)",
    "count",
    periods=(Period(1, verified=False, note="not in DOMAIN.md"),),
)
SE_NOTICE_FEE: Final = Rule(
    "SE.collection_notice_fee.max",
    "SE",
    "An inkassokrav may charge at most 180 SEK.",
    "lag (1981:739)",
    "minor",
    "due_date",
    (Period(18_000, note="DOMAIN.md gives no date from which 180 SEK applies"),),
)
SE_COMPENSATION: Final = Rule(
    "SE.compensation.amount",
    "SE",
    "Förseningsersättning 450 SEK from a business debtor; it arises with the right to interest (the day "
    "after the due date). DOMAIN.md says nothing of fees reducing it: the full amount is charged.",
    "lag (2013:7)",
    "minor",
    "right_arises",
    (Period(45_000, note="DOMAIN.md gives no date from which 450 SEK applies"),),
)
SE_COMPENSATION_BUSINESS: Final = Rule(
    "SE.compensation.business_only",
    "SE",
    "Förseningsersättning only when the debtor is a business (näringsidkare), never from a consumer.",
    "lag (2013:7)",
)
SE_INTEREST_MARGIN: Final = Rule(
    "SE.interest.margin",
    "SE",
    "Dröjsmålsränta = the Riksbank's referensränta for the half-year + 8 percentage points. The "
    "referensräntor are interest.SE_RATES.",
    "räntelagen 6 §",
    "percentage_points",
    periods=(Period(8),),
)

# --- Fordring's own structure (both jurisdictions) ---------------------------------------------------

STEP_ORDER: Final = Rule(
    "FORDRING.steps.order",
    None,
    "Steps go nudge → reminder → collection notice → hand-off (a stage never goes back), the hand-off "
    "last; an offset from the previous step needs one before it.",
    "Fordring (the ledger's dunning stages)",
)
STEP_AFTER_DUE: Final = Rule(
    "FORDRING.step.after_due",
    None,
    "Only a nudge may be sent on or before the due date: a reminder, notice or hand-off comes after it.",
    "Fordring (a reminder is of an overdue claim)",
)
DEADLINE_GIVEN: Final = Rule(
    "FORDRING.deadline.given",
    None,
    "A reminder and a collection notice each give a payment deadline.",
    "Fordring; inkassoloven §9 for the inkassovarsel",
)
DEADLINE_RESPECTED: Final = Rule(
    "FORDRING.deadline.respected",
    None,
    "No step is taken before the deadline the previous document gave has passed.",
    "Fordring (the debtor was given that deadline); inkassoforskriften §1-3 and inkassoloven §9",
)
NUDGE_CHARGES_NOTHING: Final = Rule(
    "FORDRING.nudge.no_charges",
    None,
    "A nudge charges no fee, interest or compensation and gives no deadline.",
    "Fordring",
)
HANDOFF_NO_FEE: Final = Rule(
    "FORDRING.handoff.no_fee",
    None,
    "The hand-off charges no fee and gives no deadline of its own: collection costs and deadlines are "
    "the collection agency's.",
    "Fordring",
)
CHANNEL_GIVEN: Final = Rule(
    "FORDRING.step.channel",
    None,
    "A nudge, reminder or collection notice names at least one channel to reach the debtor by.",
    "Fordring",
)
COMPENSATION_ONCE: Final = Rule(
    "FORDRING.compensation.once",
    None,
    "The fixed B2B compensation is charged at most once per claim.",
    "forsinkelsesrenteloven §3a; lag (2013:7): a fixed amount per claim",
)
SENDING_WINDOW: Final = Rule(
    "FORDRING.window",
    None,
    "The daily sending window opens before it closes (no SMS at night).",
    "Fordring",
)

ALL_RULES: Final[tuple[Rule, ...]] = (
    NO_INKASSOSATS,
    NO_REMINDER_FEE,
    NO_REMINDER_FEE_DAYS,
    NO_REMINDER_FEE_WRITTEN,
    NO_NOTICE_FEE,
    NO_NOTICE_FEE_DAYS,
    NO_FEES_PER_CLAIM,
    NO_NOTICE_FEES_PER_CLAIM,
    NO_SECOND_FEE,
    NO_REMINDER_DEADLINE,
    NO_NOTICE_AFTER_DUE,
    NO_NOTICE_DEADLINE,
    NO_NOTICE_WRITTEN,
    NO_NOTICE_BEFORE_HANDOFF,
    NO_COMPENSATION,
    NO_COMPENSATION_BUSINESS,
    NO_INTEREST,
    SE_REMINDER_FEE,
    SE_REMINDER_FEE_AGREED,
    SE_REMINDER_FEES_PER_CLAIM,
    SE_NOTICE_FEE,
    SE_COMPENSATION,
    SE_COMPENSATION_BUSINESS,
    SE_INTEREST_MARGIN,
    STEP_ORDER,
    STEP_AFTER_DUE,
    DEADLINE_GIVEN,
    DEADLINE_RESPECTED,
    NUDGE_CHARGES_NOTHING,
    HANDOFF_NO_FEE,
    CHANNEL_GIVEN,
    COMPENSATION_ONCE,
    SENDING_WINDOW,
)
RULES: Final[Mapping[str, Rule]] = MappingProxyType({rule.id: rule for rule in ALL_RULES})

FeeKind = Literal["reminder", "collection_notice"]
_FEE_CAPS: Final[Mapping[tuple[Jurisdiction, FeeKind], Rule]] = MappingProxyType(
    {
        ("NO", "reminder"): NO_REMINDER_FEE,
        ("NO", "collection_notice"): NO_NOTICE_FEE,
        ("SE", "reminder"): SE_REMINDER_FEE,
        ("SE", "collection_notice"): SE_NOTICE_FEE,
    }
)
_COMPENSATION: Final[Mapping[Jurisdiction, Rule]] = MappingProxyType(
    {"NO": NO_COMPENSATION, "SE": SE_COMPENSATION}
)


def fee_rule(jurisdiction: Jurisdiction, kind: FeeKind) -> Rule:
    """The rule capping the fee a reminder or collection notice may charge."""
    return _FEE_CAPS[(jurisdiction, kind)]


def fee_cap(jurisdiction: Jurisdiction, kind: FeeKind, due_date: date) -> int:
    """The most a reminder or collection notice may charge on a claim due on `due_date` (0 when the
    table has no value for that date: nothing unknown is charged)."""
    return _FEE_CAPS[(jurisdiction, kind)].value_on(due_date) or 0


def compensation_rule(jurisdiction: Jurisdiction) -> Rule:
    return _COMPENSATION[jurisdiction]


def compensation_period(jurisdiction: Jurisdiction, right_arises: date) -> Period | None:
    """The fixed B2B compensation in force on the day the right to it arises (None: not in the table)."""
    return _COMPENSATION[jurisdiction].period_on(right_arises)


def unverified_periods() -> tuple[tuple[Rule, Period], ...]:
    """Every value an operator must confirm (DOMAIN.md marks it unverified, or it is a placeholder)."""
    return tuple((rule, p) for rule in ALL_RULES for p in rule.periods if not p.verified)


def amount(minor: int, jurisdiction: Jurisdiction) -> str:
    """An amount as the law and an operator write it: "kr 35,00", "180,00 SEK"."""
    whole, cents = divmod(minor, 100)
    figure = f"{whole:,}".replace(",", "\u00a0") + f",{cents:02d}"
    return f"kr {figure}" if jurisdiction == "NO" else f"{figure} SEK"
