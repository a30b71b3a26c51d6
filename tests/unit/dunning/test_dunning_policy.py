"""Dunning policies: the lawful defaults, JSON round trips, and the validator refusing an unlawful policy
by naming each rule it breaks with its source."""

from __future__ import annotations

import json
from datetime import date

import pytest

from services.common.errors import InvalidArgument
from services.dunning.domain.law import DEBTOR_KINDS, JURISDICTIONS, DebtorKind, Jurisdiction
from services.dunning.domain.policy import (
    DEFAULT_POLICIES,
    Policy,
    Step,
    UnlawfulPolicy,
    check,
    default_policy,
    parse_policy,
    timeline,
    validate,
)
from tests.unit.dunning.dunning_fixtures import with_step, with_steps

TODAY = date(2026, 12, 1)
NO_CONSUMER = default_policy("NO", "consumer")
NO_BUSINESS = default_policy("NO", "business")
SE_CONSUMER = default_policy("SE", "consumer")


def rules(policy: Policy, on: date = TODAY) -> set[str]:
    return {v.rule.id for v in validate(policy, on)}


def reminder(offset: int = 14, fee: int | str = 3_500, deadline: int = 14, **more: object) -> Step:
    return Step.model_validate(
        {
            "kind": "reminder",
            "offset_days": offset,
            "channels": ["email", "print"],
            "fee_minor": fee,
            "deadline_days": deadline,
            **more,
        }
    )


def notice(offset: int = 0, fee: int | str = 3_500, deadline: int = 14, **more: object) -> Step:
    return Step.model_validate(
        {
            "kind": "collection_notice",
            "offset_days": offset,
            "offset_from": "previous_deadline",
            "channels": ["email", "print"],
            "fee_minor": fee,
            "deadline_days": deadline,
            **more,
        }
    )


HANDOFF = Step(kind="collection_handoff", offset_days=0, offset_from="previous_deadline")


@pytest.mark.parametrize("jurisdiction", JURISDICTIONS)
@pytest.mark.parametrize("kind", DEBTOR_KINDS)
@pytest.mark.parametrize("on", [date(2020, 10, 1), date(2025, 1, 1), TODAY, date(2030, 1, 1)])
def test_every_default_is_lawful(jurisdiction: Jurisdiction, kind: DebtorKind, on: date) -> None:
    policy = default_policy(jurisdiction, kind)
    assert validate(policy, on) == ()
    assert check(policy, on) is policy
    assert (policy.jurisdiction, policy.debtor_kind) == (jurisdiction, kind)


def test_norway_consumer_default_is_the_issues() -> None:
    nudge, rem, note, handoff = NO_CONSUMER.steps
    assert (nudge.kind, nudge.offset_days, nudge.channels, nudge.payment_link, nudge.has_fee) == (
        "nudge",
        3,
        ("sms", "email"),
        True,
        False,
    )
    assert (rem.kind, rem.offset_days, rem.fee_minor, rem.deadline_days) == ("reminder", 14, 3_500, 14)
    assert (note.kind, note.offset_from, note.fee_minor, note.deadline_days) == (
        "collection_notice",
        "previous_deadline",
        3_500,
        14,
    )
    assert (handoff.kind, handoff.offset_from) == ("collection_handoff", "previous_deadline")
    # Days after the due date: nudge 3; reminder 14 giving 14 (to day 28); inkassovarsel the day after,
    # giving 14; hand-off the day after that deadline.
    assert timeline(NO_CONSUMER) == ((3, None), (14, 28), (29, 43), (44, None))


def test_business_defaults_claim_the_compensation_and_sweden_charges_no_unagreed_fee() -> None:
    assert [s.charge_compensation for s in NO_BUSINESS.steps] == [False, True, False, False]
    assert [s.charge_compensation for s in DEFAULT_POLICIES[("SE", "business")].steps] == [
        False,
        True,
        False,
        False,
    ]
    assert not SE_CONSUMER.steps[1].has_fee
    assert not SE_CONSUMER.reminder_fee_agreed


@pytest.mark.parametrize("policy", list(DEFAULT_POLICIES.values()))
def test_json_round_trip(policy: Policy) -> None:
    text = policy.to_json()
    assert parse_policy(text) == policy
    assert json.loads(text)["steps"][0]["kind"] == "nudge"


def test_tenant_copy_of_a_default() -> None:
    mine = default_policy("NO", "consumer", tenant_id="t-42")
    assert mine.tenant_id == "t-42"
    assert mine.steps == NO_CONSUMER.steps


def test_parse_names_every_wrong_field() -> None:
    data = json.loads(NO_CONSUMER.to_json())
    data["steps"][1]["fee_minor"] = -5
    data["steps"][2]["kind"] = "letter_bomb"
    data["jurisdiction"] = "DK"
    with pytest.raises(InvalidArgument) as caught:
        parse_policy(json.dumps(data))
    fields = {v.field for v in caught.value.violations}
    assert "jurisdiction" in fields
    assert any(f.startswith("steps.1.fee_minor") for f in fields)
    assert any(f.startswith("steps.2.kind") for f in fields)
    with pytest.raises(InvalidArgument):
        parse_policy('{"jurisdiction": "NO", "debtor_kind": "consumer", "steps": [], "extra": 1}')


def test_legal_max_follows_the_law() -> None:
    assert validate(with_step(NO_CONSUMER, 1, fee_minor="legal_max"), TODAY) == ()


def test_a_fee_above_the_law_names_the_rule_and_its_source() -> None:
    policy = with_step(NO_CONSUMER, 1, fee_minor=7_000)
    (violation,) = validate(policy, TODAY)
    assert violation.rule.id == "NO.reminder_fee.max"
    assert violation.step == 1
    assert "inkassoforskriften" in violation.rule.source
    assert "kr 70,00" in violation.message
    assert "steps[1]" in str(violation)
    assert "NO.reminder_fee.max" in str(violation)
    # Saved before 1 Oct 2020, the policy meets claims due after it too: kr 70 is refused then as well.
    assert rules(policy, date(2020, 9, 1)) == {"NO.reminder_fee.max"}
    assert rules(with_step(NO_CONSUMER, 2, fee_minor=3_501)) == {"NO.collection_notice_fee.max"}


def test_check_raises_with_every_violation() -> None:
    policy = with_step(with_step(NO_CONSUMER, 1, fee_minor=9_000), 2, deadline_days=7)
    with pytest.raises(UnlawfulPolicy) as caught:
        check(policy, TODAY)
    found = {v.rule.id for v in caught.value.rule_violations}
    assert {"NO.reminder_fee.max", "NO.collection_notice.deadline"} <= found
    assert all("[" in v.description for v in caught.value.violations)
    assert {v.field for v in caught.value.violations} >= {"steps[1]", "steps[2]"}


def test_an_inkassovarsel_before_or_on_the_due_date() -> None:
    early = with_steps(NO_CONSUMER, notice(offset=0, offset_from="due_date"), HANDOFF)
    assert "NO.collection_notice.after_due" in rules(early)
    before = with_steps(NO_CONSUMER, notice(offset=-3, offset_from="due_date", fee=0), HANDOFF)
    assert "NO.collection_notice.after_due" in rules(before)


def test_an_inkassovarsel_before_the_reminders_deadline_has_passed() -> None:
    policy = with_steps(NO_CONSUMER, reminder(), notice(offset=20, offset_from="due_date", fee=0), HANDOFF)
    assert "FORDRING.deadline.respected" in rules(policy)
    on_the_deadline = with_steps(
        NO_CONSUMER, reminder(), notice(offset=28, offset_from="due_date", fee=0), HANDOFF
    )
    assert "FORDRING.deadline.respected" in rules(on_the_deadline)
    after = with_steps(NO_CONSUMER, reminder(), notice(offset=29, offset_from="due_date", fee=0), HANDOFF)
    assert rules(after) == set()


def test_a_fee_bearing_second_notice_before_the_first_deadline_names_1_3() -> None:
    policy = with_steps(NO_CONSUMER, reminder(), notice(offset=20, offset_from="due_date"), HANDOFF)
    assert {"FORDRING.deadline.respected", "NO.fees.second_after_missed_deadline"} <= rules(policy)


@pytest.mark.parametrize(
    ("index", "rule"), [(1, "NO.reminder.deadline"), (2, "NO.collection_notice.deadline")]
)
def test_a_deadline_under_14_days(index: int, rule: str) -> None:
    found = rules(with_step(NO_CONSUMER, index, deadline_days=13))
    assert rule in found
    # The reminder's deadline is also the one §1-3 needs before the inkassovarsel's fee.
    assert found - {rule} <= {"NO.fees.second_after_missed_deadline"}
    assert rules(with_step(NO_CONSUMER, index, deadline_days=0)) >= {"FORDRING.deadline.given"}


def test_swedish_deadlines_are_not_held_to_norways_14_days() -> None:
    # DOMAIN.md gives Sweden no minimum: a deadline is required, its length is the tenant's.
    assert rules(with_step(SE_CONSUMER, 1, deadline_days=10)) == set()


def test_a_reminder_fee_before_day_14() -> None:
    assert rules(with_step(NO_CONSUMER, 1, offset_days=13)) == {"NO.reminder_fee.days_after_due"}
    assert rules(with_step(NO_CONSUMER, 1, offset_days=13, fee_minor=0)) == set()


def test_a_fee_on_an_sms_alone_is_no_written_reminder() -> None:
    assert rules(with_step(NO_CONSUMER, 1, channels=["sms"])) == {"NO.reminder_fee.written"}
    assert "NO.collection_notice.written" in rules(with_step(NO_CONSUMER, 2, channels=["sms"], fee_minor=0))


def test_fee_counts_of_inkassoforskriften_1_3() -> None:
    two_reminders = with_steps(NO_CONSUMER, reminder(), reminder(offset=0, offset_from="previous_deadline"))
    assert rules(two_reminders) == set()
    one_and_one = with_steps(NO_CONSUMER, reminder(), notice(), HANDOFF)
    assert rules(one_and_one) == set()
    two_and_notice = with_steps(
        NO_CONSUMER, reminder(), reminder(offset=0, offset_from="previous_deadline"), notice(), HANDOFF
    )
    assert rules(two_and_notice) == {"NO.fees.max_per_claim"}
    three_reminders = with_steps(
        NO_CONSUMER,
        reminder(),
        reminder(offset=0, offset_from="previous_deadline"),
        reminder(offset=0, offset_from="previous_deadline"),
    )
    assert rules(three_reminders) == {"NO.fees.max_per_claim"}
    two_and_a_free_notice = with_steps(
        NO_CONSUMER, reminder(), reminder(offset=0, offset_from="previous_deadline"), notice(fee=0), HANDOFF
    )
    assert rules(two_and_a_free_notice) == set()
    two_notices = with_steps(NO_CONSUMER, reminder(fee=0), notice(), notice(), HANDOFF)
    assert rules(two_notices) == {"NO.collection_notice_fee.max_per_claim"}


def test_a_swedish_reminder_fee_is_capped_and_lawful_with_or_without_the_tenant_s_agreement() -> None:
    # Without the tenant's agreement the fee goes only on invoices issued with their own (decide's
    # test_dunning_schedule.py: test_swedish_reminder_fee_only_when_agreed).
    with_fee = with_step(SE_CONSUMER, 1, fee_minor=6_000)
    assert validate(with_fee, TODAY) == ()
    agreed = Policy.model_validate({**with_fee.model_dump(), "reminder_fee_agreed": True})
    assert validate(agreed, TODAY) == ()
    too_much = Policy.model_validate(
        {**with_step(SE_CONSUMER, 1, fee_minor=6_001).model_dump(), "reminder_fee_agreed": True}
    )
    assert rules(too_much) == {"SE.reminder_fee.max"}
    assert rules(with_step(SE_CONSUMER, 2, fee_minor=18_001)) == {"SE.collection_notice_fee.max"}


def test_one_swedish_reminder_fee_per_claim() -> None:
    two = with_steps(
        SE_CONSUMER,
        reminder(fee=6_000),
        reminder(offset=0, offset_from="previous_deadline", fee=6_000),
        reminder_fee_agreed=True,
    )
    assert rules(two) == {"SE.reminder_fee.max_per_claim"}


@pytest.mark.parametrize(
    ("policy", "rule"),
    [(NO_CONSUMER, "NO.compensation.business_only"), (SE_CONSUMER, "SE.compensation.business_only")],
)
def test_no_compensation_from_consumers(policy: Policy, rule: str) -> None:
    assert rule in rules(with_step(policy, 1, charge_compensation=True))


def test_compensation_once_and_no_norwegian_fee_after_it() -> None:
    twice = with_step(NO_BUSINESS, 2, charge_compensation=True)
    assert rules(twice) == {"FORDRING.compensation.once"}
    fee_after = with_step(NO_BUSINESS, 2, fee_minor=3_500)
    assert rules(fee_after) == {"NO.compensation.amount"}
    fee_with = with_step(NO_BUSINESS, 1, fee_minor=3_500)
    assert rules(fee_with) == set()


def test_no_hand_off_without_an_inkassovarsel_in_norway() -> None:
    straight = with_steps(NO_CONSUMER, reminder(), HANDOFF)
    assert rules(straight) == {"NO.collection_notice.before_handoff"}
    waived_consumer = Policy.model_validate({**straight.model_dump(), "collection_notice_waived": True})
    assert rules(waived_consumer) == {"NO.collection_notice.before_handoff"}
    business = with_steps(NO_BUSINESS, reminder(fee=0), HANDOFF, collection_notice_waived=True)
    assert rules(business) == set()
    assert rules(with_steps(SE_CONSUMER, reminder(fee=0), HANDOFF)) == set()


def test_a_nudge_charges_nothing_and_a_hand_off_no_fee() -> None:
    assert rules(with_step(NO_CONSUMER, 0, fee_minor=1_000)) == {"FORDRING.nudge.no_charges"}
    assert rules(with_step(NO_CONSUMER, 0, charge_interest=True)) == {"FORDRING.nudge.no_charges"}
    assert rules(with_step(NO_CONSUMER, 3, fee_minor=70_000)) == {"FORDRING.handoff.no_fee"}
    assert rules(with_step(NO_CONSUMER, 3, deadline_days=14)) == {"FORDRING.handoff.no_fee"}


def test_structure() -> None:
    backwards = with_steps(
        NO_CONSUMER, reminder(), Step(kind="nudge", offset_days=30, channels=("sms",)), notice(), HANDOFF
    )
    assert "FORDRING.steps.order" in rules(backwards)
    handoff_first = with_steps(NO_CONSUMER, HANDOFF, reminder())
    assert "FORDRING.steps.order" in rules(handoff_first)
    reminder_on_due_date = with_step(NO_CONSUMER, 1, offset_days=0, fee_minor=0)
    assert "FORDRING.step.after_due" in rules(reminder_on_due_date)
    silent = with_step(NO_CONSUMER, 1, channels=[])
    assert "FORDRING.step.channel" in rules(silent)
    night = Policy.model_validate(
        {**NO_CONSUMER.model_dump(), "window_opens": "20:00", "window_closes": "08:00"}
    )
    assert rules(night) == {"FORDRING.window"}
    # A nudge may come before the due date (customers who were late before).
    early_nudge = with_step(NO_CONSUMER, 0, offset_days=-2)
    assert rules(early_nudge) == set()
