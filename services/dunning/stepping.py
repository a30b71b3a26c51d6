"""The dunning run: every open case has a timer due when its next step may be; any number of replicas
claim due timers with a lease, decide each case (services/dunning/domain/schedule.py) and store what
came of it in one transaction per claim: the proposals (`DunningActionTaken`, through the outbox), the
cases (step proposed, held and why, or waiting), and each timer moved to the case's next look or
deleted. The transaction writes a timer only while this replica holds its lease (fencing): a replica
that lost its claim to another (a pause longer than the lease) has its whole batch aborted, so no step
is proposed twice. A step's action id is derived from the invoice and the step's place in the
policy, so the same step decided again is the same proposal, and the ledger applies it once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from opentelemetry import metrics, trace
from pymongo import DeleteOne, UpdateOne

from services.common.clock import Clock, parse_iso_date
from services.common.directory import DirectoryClient
from services.common.events import DUNNING_TOPIC, DunningActionTaken, DunningActionTakenData
from services.common.mongo import Doc, Session, in_slices, in_transaction
from services.common.outbox import outbox_doc
from services.common.timers import Timer, Timers, timer_doc
from services.dunning.cases import (
    decision_fields,
    held_doc,
    holds_of,
    invoice_state,
    is_known,
    unanswered_since,
)
from services.dunning.domain.calendar import TIMEZONES, calendar_for
from services.dunning.domain.interest import RATES, RateTable
from services.dunning.domain.law import Jurisdiction
from services.dunning.domain.policy import Policy, for_payer
from services.dunning.domain.schedule import BankFiles, Decision, decide
from services.dunning.policies import PolicyBook
from services.dunning.store import STEP_TIMER, DunningStore, timer_id

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("fordring.dunning")
_meter = metrics.get_meter("fordring.dunning")
DECISIONS = _meter.create_counter("fordring_dunning_decisions", description="Cases decided, by outcome")
PROPOSED = _meter.create_counter("fordring_dunning_steps_proposed", description="Steps proposed, by step")

_NAMESPACE: Final = uuid.UUID("5b0f3f0e-8f4e-4c55-9a55-2f0c1d1b6a11")
_NEVER: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Days the payer history looks back for "late before" (the early nudge rule).
_LATE_DAYS: Final = 3


def action_id(invoice_id: str, index: int, kind: str) -> str:
    """One step of one invoice is one proposal, however often it is decided."""
    return str(uuid.uuid5(_NAMESPACE, f"{invoice_id}/{index}/{kind}"))


class FencingLost(Exception):
    """A timer of the batch is no longer this replica's: the batch is given up (another has it)."""


@dataclass(frozen=True)
class TenantInfo:
    jurisdiction: Jurisdiction


class Tenants:
    """A tenant's jurisdiction (from the ledger's directory), cached."""

    def __init__(self, directory: DirectoryClient | None) -> None:
        self._directory = directory
        self._known: dict[str, TenantInfo] = {}

    async def of(self, tenant_id: str) -> TenantInfo:
        known = self._known.get(tenant_id)
        if known is not None:
            return known
        tenant = await self._directory.by_id(tenant_id) if self._directory is not None else None
        jurisdiction: Jurisdiction = "SE" if tenant is not None and tenant.jurisdiction == "SE" else "NO"
        info = TenantInfo(jurisdiction)
        if tenant is not None:
            self._known[tenant_id] = info
        return info

    def put(self, tenant_id: str, jurisdiction: Jurisdiction) -> None:
        self._known[tenant_id] = TenantInfo(jurisdiction)


class Stepper:
    def __init__(
        self,
        store: DunningStore,
        timers: Timers,
        policies: PolicyBook,
        tenants: Tenants,
        clock: Clock,
        *,
        held_recheck: float,
        rates: Mapping[Jurisdiction, RateTable] = RATES,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._timers = timers
        self._policies = policies
        self._tenants = tenants
        self._clock = clock
        self._held_recheck = timedelta(seconds=held_recheck)
        self.rates = rates
        self._on_commit = on_commit

    # --- what a case's timer should be -------------------------------------------------------

    async def policy_for(self, case: Mapping[str, Any]) -> Policy:
        info = await self._tenants.of(case["tenant_id"])
        stored = await self._policies.get(case["tenant_id"], info.jurisdiction, case["customer_kind"])
        policy = stored.policy
        if policy.early_nudge_days:
            policy = for_payer(policy, late_before=await self.late_before(case))
        return policy

    async def late_before(self, case: Mapping[str, Any]) -> bool:
        """Whether the customer paid an earlier invoice late (after its due date, by some days)."""
        async for other in self._store.cases.find(
            {
                "tenant_id": case["tenant_id"],
                "customer_id": case["customer_id"],
                "days_late": {"$gte": _LATE_DAYS},
            },
            projection={"_id": 1},
            limit=1,
        ):
            if other["_id"] != case["_id"]:
                return True
        return False

    async def next_look(self, case: Mapping[str, Any], now: datetime) -> datetime | None:
        """When the case's timer should be due (None: the case is done), holds left out: a held step
        is found when the timer fires."""
        if not is_known(case):
            return None
        policy = await self.policy_for(case)
        decision = decide(invoice_state(case), policy, now, rates=self.rates[policy.jurisdiction])
        if decision.outcome == "done":
            return None
        look = (
            decision.step.at.astimezone(UTC)
            if decision.outcome == "waiting" and decision.step is not None
            else now
        )
        answer = self.answer_due(case, now)
        return max(look, answer) if answer is not None else look

    def answer_due(self, case: Mapping[str, Any], now: datetime) -> datetime | None:
        """Until when the case waits for the ledger's answer to its last proposal (None: it does not).
        The next step is decided on the version that answer brings, never on the one before it (the
        ledger would refuse it as stale); the answer wakes the case, and this is the safety net should
        it never come. Any other event (a redelivery after a rebalance) does not bring it forward."""
        since = unanswered_since(case)
        if since is None or since + self._held_recheck <= now:
            return None
        return since + self._held_recheck

    @property
    def timers(self) -> Timers:
        return self._timers

    async def timer_ops(
        self, cases: Sequence[Mapping[str, Any]], now: datetime
    ) -> list[UpdateOne | DeleteOne]:
        """Timer writes that bring each case's timer to its next look (never later than it is: a
        change only brings a look forward) or delete it when the case is done."""
        ops: list[UpdateOne | DeleteOne] = []
        for case in cases:
            due = await self.next_look(case, now)
            retry = case.get("retry_after")
            if due is not None and retry is not None and retry > due:
                due = retry
            tid = timer_id(case["_id"])
            if due is None:
                if is_known(case):
                    ops.append(DeleteOne({"_id": tid, "owner": ""}))
                continue
            insert = timer_doc(tid, STEP_TIMER, due, {}, tenant_id=case["tenant_id"])
            del insert["due_at"]
            ops.append(
                UpdateOne({"_id": tid}, {"$min": {"due_at": due}, "$setOnInsert": insert}, upsert=True)
            )
        return ops

    # --- the run ---------------------------------------------------------------------------

    async def run(self, timers: list[Timer]) -> None:
        """The handler of claimed step timers: decide and store, one transaction for the claim."""
        with _tracer.start_as_current_span("dunning.step_batch") as span:
            span.set_attribute("fordring.batch.size", len(timers))
            outcomes = await in_transaction(self._store.client, lambda s: self._decide_batch(s, timers))
        for outcome, count in outcomes.items():
            DECISIONS.add(count, {"outcome": outcome})
        if outcomes.get("due"):
            self._on_commit()

    async def _decide_batch(self, s: Session, timers: list[Timer]) -> dict[str, int]:
        now = self._clock.now()
        ids = [t.id.removeprefix("case:") for t in timers]
        cases: dict[str, Doc] = {}
        for some in in_slices(ids):
            async for case in self._store.cases.find({"_id": {"$in": some}}, session=s):
                cases[case["_id"]] = case
        bank = await self._bank_files({c["tenant_id"] for c in cases.values()}, s)
        case_ops: list[UpdateOne] = []
        timer_ops: list[UpdateOne | DeleteOne] = []
        outbox: list[Doc] = []
        outcomes: dict[str, int] = {}
        for timer in timers:
            invoice_id = timer.id.removeprefix("case:")
            found = cases.get(invoice_id)
            mine = {"_id": timer.id, "owner": self._timers.owner}
            if found is None or not is_known(found):
                timer_ops.append(DeleteOne(mine))
                continue
            case = found
            retry = case.get("retry_after")
            if retry is not None and retry > now:
                # The ledger refused this case's last proposal: not again before the back-off ends.
                timer_ops.append(
                    UpdateOne(mine, {"$set": {"due_at": retry, "owner": "", "lease_until": _NEVER}})
                )
                continue
            policy = await self.policy_for(case)
            calendar = calendar_for(policy.jurisdiction)
            decision = decide(
                invoice_state(case),
                policy,
                now,
                holds_of([case], bank.get(case["tenant_id"]), calendar),
                calendar=calendar,
                rates=self.rates[policy.jurisdiction],
            )
            change: Doc = {"$set": decision_fields(decision, now)}
            next_due: datetime | None
            if decision.outcome in ("due", "held") and _awaiting_overdue(case, decision, now, policy):
                # Past the due date but not overdue in the ledger yet (its sweep runs after midnight):
                # the ledger would refuse the step; its InvoiceOverdue brings the case back.
                outcomes["waiting"] = outcomes.get("waiting", 0) + 1
                change["$set"].update(
                    outcome="waiting", reason="awaiting_overdue", detail="the ledger's overdue"
                )
                timer_ops.append(
                    UpdateOne(
                        mine,
                        {"$set": {"due_at": now + self._held_recheck, "owner": "", "lease_until": _NEVER}},
                    )
                )
                case_ops.append(UpdateOne({"_id": invoice_id}, change))
                continue
            answer = self.answer_due(case, now)
            if decision.outcome == "due" and answer is not None:
                outcomes["waiting"] = outcomes.get("waiting", 0) + 1
                change["$set"].update(
                    outcome="waiting", reason="awaiting_ledger", detail="the ledger's answer to the last step"
                )
                timer_ops.append(
                    UpdateOne(mine, {"$set": {"due_at": answer, "owner": "", "lease_until": _NEVER}})
                )
                case_ops.append(UpdateOne({"_id": invoice_id}, change))
                continue
            outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
            if decision.outcome == "due":
                event = self._proposal(case, decision, now, policy)
                outbox.append(outbox_doc(event, DUNNING_TOPIC))
                change["$set"][f"steps.{event.data.action_id}"] = _step_doc(
                    case, decision, event, now, policy
                )
                change["$set"]["retry_after"] = None
                change["$unset"] = {"held": ""}
                PROPOSED.add(1, {"step": event.data.action})
                # The next look comes when the ledger answers (its event wakes the case); this one is
                # a safety net should the answer never come.
                next_due = now + self._held_recheck
            elif decision.outcome == "held":
                since = case.get("held", {}).get("since") or now
                change["$set"]["held"] = held_doc(decision, since)
                until = decision.next_check
                next_due = until.astimezone(UTC) if until is not None else now + self._held_recheck
            elif decision.outcome == "waiting" and decision.step is not None:
                change["$unset"] = {"held": ""}
                next_due = decision.step.at.astimezone(UTC)
            else:
                change["$unset"] = {"held": ""}
                next_due = None
            case_ops.append(UpdateOne({"_id": invoice_id}, change))
            if next_due is None:
                timer_ops.append(DeleteOne(mine))
            else:
                timer_ops.append(
                    UpdateOne(mine, {"$set": {"due_at": next_due, "owner": "", "lease_until": _NEVER}})
                )
        if timer_ops:
            result = await self._timers.collection.bulk_write(timer_ops, ordered=False, session=s)
            done = result.matched_count + result.deleted_count
            if done != len(timer_ops):
                raise FencingLost(
                    f"{len(timer_ops) - done} of {len(timer_ops)} timers are another replica's now"
                )
        if case_ops:
            await self._store.cases.bulk_write(case_ops, ordered=False, session=s)
        if outbox:
            await self._store.db["outbox"].insert_many(outbox, ordered=False, session=s)
        return outcomes

    async def _bank_files(self, tenant_ids: set[str], s: Session) -> dict[str, BankFiles | None]:
        found: dict[str, BankFiles | None] = {}
        for tenant_id in tenant_ids:
            info = await self._tenants.of(tenant_id)
            # The cut-off and the requirement are the tenant's (its consumer policy's, as both kinds
            # of debtor pay into the same accounts).
            policy = (await self._policies.get(tenant_id, info.jurisdiction, "consumer")).policy
            if policy.bank_files_cutoff is None:
                found[tenant_id] = None
                continue
            last = None
            if policy.require_daily_bank_files:
                doc = await self._store.bank_days.find_one({"_id": tenant_id}, session=s)
                last = parse_iso_date(doc["last_day"]) if doc else None
            else:
                last = self._clock.now().astimezone(TIMEZONES[info.jurisdiction]).date()
            found[tenant_id] = BankFiles(policy.bank_files_cutoff, last)
        return found

    def _proposal(
        self, case: Mapping[str, Any], decision: Decision, now: datetime, policy: Policy
    ) -> DunningActionTaken:
        step = decision.step
        assert step is not None
        aid = action_id(case["_id"], step.index, step.kind)
        # What the ledger names the charges by, on the customer's documents too: the policy's label
        # for the step ("purring"), never the law's notes (those stay on the case).
        label = policy.steps[step.index].label if step.index < len(policy.steps) else ""
        data = DunningActionTakenData(
            action_id=aid,
            invoice_id=case["_id"],
            based_on_version=int(case["version"]),
            action=step.kind,
            fee_minor=step.fee_minor,
            interest_minor=step.interest_minor,
            compensation_minor=step.compensation_minor,
            description=label,
            deadline=step.deadline.isoformat() if step.deadline else "",
            channels=list(step.channels),
            payment_link=step.payment_link,
            interest_to_date_minor=step.interest_to_date_minor if step.show_interest else 0,
            offers=_offers(case, step.kind, now, policy),
        )
        # A new (time-ordered) event id: the relay publishes in id order. The action id names the step.
        return DunningActionTaken(
            tenant_id=case["tenant_id"], subject=case["_id"], occurred_at=now, data=data
        )


def load_rates(paths: str) -> Mapping[Jurisdiction, RateTable]:
    """The built-in rate tables, extended by the operator's files (comma-separated paths)."""
    tables = dict(RATES)
    for path in filter(None, (p.strip() for p in paths.split(","))):
        with open(path, encoding="utf-8") as source:
            table = RateTable.from_json(source.read())
        tables[table.jurisdiction] = tables[table.jurisdiction].extended(*table.rates)
    return tables


def _offers(case: Mapping[str, Any], kind: str, now: datetime, policy: Policy) -> list[str]:
    """The early nudge (before the due date, to a customer who paid late before) offers automatic
    payment: AvtaleGiro and eFaktura (in Sweden Autogiro and e-faktura, named alike)."""
    if kind != "nudge" or not policy.early_nudge_days:
        return []
    today = now.astimezone(TIMEZONES[policy.jurisdiction]).date()
    return ["avtalegiro", "efaktura"] if today <= parse_iso_date(case["due_date"]) else []


def _awaiting_overdue(case: Mapping[str, Any], decision: Decision, now: datetime, policy: Policy) -> bool:
    if case.get("status") not in ("open", "part_paid") or decision.step is None:
        return False
    today = now.astimezone(TIMEZONES[policy.jurisdiction]).date()
    # An early nudge (before the due date) goes to an invoice that is not overdue yet.
    return today > parse_iso_date(case["due_date"])


def _step_doc(
    case: Mapping[str, Any], decision: Decision, event: DunningActionTaken, now: datetime, policy: Policy
) -> Doc:
    step = decision.step
    assert step is not None
    tz = TIMEZONES[policy.jurisdiction]
    return {
        "index": step.index,
        "kind": step.kind,
        "on": now.astimezone(tz).date().isoformat(),
        "at": now,
        "deadline": step.deadline.isoformat() if step.deadline else "",
        "fee": step.fee_minor,
        "interest": step.interest_minor,
        "interest_to_date": step.interest_to_date_minor,
        "compensation": step.compensation_minor,
        "channels": list(step.channels),
        "based_on_version": int(case["version"]),
        "state": "proposed",
        "event_id": event.id,
        "notes": [str(n) for n in step.notes],
    }
