"""Dunning over gRPC: `fordring.dunning.v1.DunningService` — policies (with the law's check and a dry
run), pauses, the held steps, one invoice's case, a customer's payer history and the daily export
of claims handed to collection."""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

import grpc
from fordring.common.v1 import common_pb2 as cpb
from fordring.dunning.v1 import dunning_pb2 as pb
from fordring.dunning.v1 import dunning_pb2_grpc

from services.common.clock import Clock, isoformat_utc, parse_iso_date
from services.common.errors import FieldViolation, InvalidArgument, NotFound
from services.common.events import DUNNING_TOPIC, DunningPaused, DunningPausedData, DunningResumed
from services.common.ids import new_id
from services.common.ledger_client import LedgerClient
from services.common.mongo import Doc, Session, in_transaction
from services.common.outbox import outbox_doc
from services.common.tenancy import current_tenant
from services.dunning.cases import SETTLED, holds_of, invoice_state, is_known
from services.dunning.domain.calendar import TIMEZONES, calendar_for
from services.dunning.domain.interest import accrue
from services.dunning.domain.law import Jurisdiction
from services.dunning.domain.policy import validate
from services.dunning.domain.schedule import decide
from services.dunning.domain.simulate import simulate
from services.dunning.exports import export_file
from services.dunning.policies import PolicyBook, StoredPolicy, debtor_kind_of, jurisdiction_of
from services.dunning.projection import Projection
from services.dunning.stepping import Stepper, Tenants
from services.dunning.store import DunningStore

Context = grpc.aio.ServicerContext[Any, Any]
MAX_ID: Final = 100
MAX_REASON: Final = 500
MAX_PAGE: Final = 500
# The most invoices one dry run replays (a bigger period is refused: narrow it).
MAX_SIMULATED: Final = 200_000
MAX_SIMULATED_DAYS: Final = 3 * 366


def _at(value: Any) -> str:
    return isoformat_utc(value) if isinstance(value, datetime) else ""


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field, description)])


def policy_pb(stored: StoredPolicy) -> pb.PolicyResponse:
    return pb.PolicyResponse(
        policy_json=stored.policy.to_json(),
        is_default=stored.is_default,
        version=stored.version,
        updated_at=_at(stored.updated_at),
        updated_by=stored.updated_by,
    )


class DunningApi(dunning_pb2_grpc.DunningServiceServicer):
    def __init__(
        self,
        store: DunningStore,
        policies: PolicyBook,
        stepper: Stepper,
        projection: Projection,
        tenants: Tenants,
        ledger: LedgerClient,
        clock: Clock,
        *,
        on_commit: Any = lambda: None,
    ) -> None:
        self._store = store
        self._policies = policies
        self._stepper = stepper
        self._projection = projection
        self._tenants = tenants
        self._ledger = ledger
        self._clock = clock
        self._on_commit = on_commit

    # --- policies ----------------------------------------------------------------------------

    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Context) -> pb.PolicyResponse:
        tenant = current_tenant()
        stored = await self._policies.get(
            tenant.id, jurisdiction_of(request.jurisdiction), debtor_kind_of(request.debtor_kind)
        )
        return policy_pb(stored)

    async def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: Context
    ) -> pb.ListPoliciesResponse:
        tenant = current_tenant()
        return pb.ListPoliciesResponse(policies=[policy_pb(p) for p in await self._policies.all(tenant.id)])

    async def SetPolicy(self, request: pb.SetPolicyRequest, context: Context) -> pb.PolicyResponse:
        tenant = current_tenant()
        actor = request.actor.strip()[:200] or "operator"
        stored = await self._policies.set(
            tenant.id, request.policy_json, expected_version=request.expected_version, actor=actor
        )
        # Every open case of this kind is decided again under the new policy, now.
        now = self._clock.now()
        await self._stepper.timers.collection.update_many(
            {"tenant_id": tenant.id, "kind": "dunning-step"}, {"$min": {"due_at": now}}
        )
        self._stepper.timers.wake()
        return policy_pb(stored)

    async def SimulatePolicy(
        self, request: pb.SimulatePolicyRequest, context: Context
    ) -> pb.SimulatePolicyResponse:
        tenant = current_tenant()
        policy = self._policies.parse(tenant.id, request.policy_json)
        tz = TIMEZONES[policy.jurisdiction]
        now = self._clock.now()
        today = now.astimezone(tz).date()
        refusals = [
            pb.RuleRefusal(rule_id=v.rule.id, message=v.message, field=v.field, source=v.rule.source)
            for v in validate(policy, today)
        ]
        query: Doc = {"tenant_id": tenant.id, "customer_kind": policy.debtor_kind}
        if request.due_from or request.due_to:
            due_from = _date(request.due_from, "due_from") if request.due_from else date(2000, 1, 1)
            due_to = _date(request.due_to, "due_to") if request.due_to else today
            until_day = _date(request.until, "until") if request.until else today
            if due_from > due_to:
                raise _invalid("due_to", "the period ends before it starts")
            if until_day < due_from:
                raise _invalid("until", "before the period")
            if (due_to - due_from).days > MAX_SIMULATED_DAYS:
                raise _invalid("due_to", f"at most {MAX_SIMULATED_DAYS} days per dry run")
            query["due_date"] = {"$gte": due_from.isoformat(), "$lte": due_to.isoformat()}
            start = now
            until = datetime.combine(until_day, time(23, 59), tzinfo=tz)
            forward, period = False, f"due {due_from} to {due_to}, replayed to {until_day}"
        else:
            days = request.days or 90
            if not 1 <= days <= 3650:
                raise _invalid("days", "between 1 and 3650")
            query["status"] = {"$nin": sorted(SETTLED)}
            start, until = now, now + timedelta(days=days)
            forward, period = (
                True,
                f"open invoices, {today} to {(now + timedelta(days=days)).astimezone(tz).date()}",
            )
        jurisdiction = (await self._tenants.of(tenant.id)).jurisdiction
        if jurisdiction != policy.jurisdiction:
            raise _invalid(
                "policy_json",
                f"the tenant's invoices are under {jurisdiction} law, the policy {policy.jurisdiction}",
            )
        count = await self._store.cases.count_documents(query)
        if count > MAX_SIMULATED:
            raise _invalid(
                "due_to", f"{count} invoices: at most {MAX_SIMULATED} per dry run; narrow the period"
            )
        states = [invoice_state(case) async for case in self._store.cases.find(query) if is_known(case)]
        report = simulate(
            states,
            policy,
            start,
            until,
            start_at_due=not forward,
            forward=forward,
            rates=self._stepper.rates[policy.jurisdiction],
        )
        currency = "NOK" if policy.jurisdiction == "NO" else "SEK"
        return pb.SimulatePolicyResponse(
            invoices=report.invoices,
            steps=[
                pb.StageCount(
                    step=kind,
                    channel=channel,
                    count=t.count,
                    fees_minor=t.fees_minor,
                    interest_minor=t.interest_minor,
                    compensation_minor=t.compensation_minor,
                )
                for (kind, channel), t in sorted(
                    report.steps.items(), key=lambda kv: _STEP_ORDER.get(kv[0][0], 9)
                )
            ],
            handed_off=report.handed_off,
            spared_by_payment=report.spared_by_payment,
            refusals=refusals,
            notes=[
                pb.RuleRefusal(rule_id=rule, message=f"{count} times: {message}")
                for rule, (count, message) in sorted(report.notes.items())
            ],
            currency=currency,
            period=period,
        )

    # --- pauses ------------------------------------------------------------------------------

    async def Pause(self, request: pb.PauseRequest, context: Context) -> pb.PauseResponse:
        tenant = current_tenant()
        invoice_id = _required(request.invoice_id, "invoice_id", MAX_ID)
        reason = _required(request.reason, "reason", MAX_REASON)
        kind = request.kind.strip() or "pause"
        if kind not in ("pause", "dispute"):
            raise _invalid("kind", "pause or dispute")
        until = _until(request.until, self._clock.now()) if request.until else None
        actor = request.actor.strip()[:200] or "operator"
        await self._known_invoice(tenant.id, invoice_id)
        now = self._clock.now()
        pause_id = new_id()

        async def work(s: Session) -> tuple[str, bool]:
            same = await self._store.pauses.find_one(
                {
                    "invoice_id": invoice_id,
                    "tenant_id": tenant.id,
                    "kind": kind,
                    "reason": reason,
                    "open": True,
                },
                session=s,
            )
            if same is not None:
                return same["_id"], True
            await self._store.pauses.insert_one(
                {
                    "_id": pause_id,
                    "tenant_id": tenant.id,
                    "invoice_id": invoice_id,
                    "kind": kind,
                    "reason": reason,
                    "until": until,
                    "actor": actor,
                    "opened_at": now,
                    "open": True,
                },
                session=s,
            )
            await self._store.cases.update_one(
                {"_id": invoice_id},
                {
                    "$set": {f"pauses.{pause_id}": {"kind": kind, "reason": reason, "until": until}},
                    "$setOnInsert": {"tenant_id": tenant.id},
                },
                upsert=True,
                session=s,
            )
            event = DunningPaused(
                tenant_id=tenant.id,
                subject=invoice_id,
                occurred_at=now,
                data=DunningPausedData(
                    pause_id=pause_id,
                    invoice_id=invoice_id,
                    kind=kind,
                    reason=reason,
                    actor=actor,
                    until=_at(until),
                ),
            )
            await self._store.db["outbox"].insert_one(outbox_doc(event, DUNNING_TOPIC), session=s)
            return pause_id, False

        found, already = await in_transaction(self._store.client, work)
        if not already:
            self._on_commit()
        return pb.PauseResponse(pause_id=found, already_paused=already)

    async def Resume(self, request: pb.ResumeRequest, context: Context) -> pb.ResumeResponse:
        tenant = current_tenant()
        if not request.invoice_id.strip() and not request.pause_id.strip():
            raise _invalid("invoice_id", "an invoice id or a pause id is required")
        query: Doc = {"tenant_id": tenant.id, "open": True}
        if request.pause_id.strip():
            query["_id"] = _required(request.pause_id, "pause_id", MAX_ID)
        if request.invoice_id.strip():
            query["invoice_id"] = _required(request.invoice_id, "invoice_id", MAX_ID)
        actor = request.actor.strip()[:200] or "operator"
        reason = request.reason.strip()[:MAX_REASON]
        now = self._clock.now()

        async def work(s: Session) -> list[Doc]:
            found = await self._store.pauses.find(query, session=s).to_list()
            for pause in found:
                await self._store.pauses.update_one(
                    {"_id": pause["_id"]},
                    {
                        "$set": {
                            "open": False,
                            "resumed_at": now,
                            "resumed_by": actor,
                            "resume_reason": reason,
                        }
                    },
                    session=s,
                )
                await self._store.cases.update_one(
                    {"_id": pause["invoice_id"]}, {"$unset": {f"pauses.{pause['_id']}": ""}}, session=s
                )
                event = DunningResumed(
                    tenant_id=tenant.id,
                    subject=pause["invoice_id"],
                    occurred_at=now,
                    data=DunningPausedData(
                        pause_id=pause["_id"],
                        invoice_id=pause["invoice_id"],
                        kind=pause["kind"],
                        reason=reason or pause["reason"],
                        actor=actor,
                    ),
                )
                await self._store.db["outbox"].insert_one(outbox_doc(event, DUNNING_TOPIC), session=s)
            return found

        resumed = await in_transaction(self._store.client, work)
        if not resumed and request.pause_id.strip():
            raise NotFound(f"no open pause {request.pause_id.strip()}")
        if resumed:
            self._on_commit()
            await self._projection.retime({p["invoice_id"] for p in resumed})
        return pb.ResumeResponse(resumed=len(resumed))

    async def _known_invoice(self, tenant_id: str, invoice_id: str) -> None:
        case = await self._store.cases.find_one(
            {"_id": invoice_id}, projection={"tenant_id": 1, "version": 1}
        )
        if case is not None and case.get("tenant_id") == tenant_id and "version" in case:
            return
        if case is not None and case.get("tenant_id") not in (None, tenant_id):
            raise NotFound(f"no invoice {invoice_id}")
        # Not seen yet (the events are on their way): the ledger knows.
        invoice = await self._ledger.invoice(tenant_id, invoice_id)
        if invoice.kind and str(invoice.kind).lower().endswith("credit_note"):
            raise _invalid("invoice_id", "a credit note is not dunned")

    # --- reads -------------------------------------------------------------------------------

    async def ListPauses(self, request: pb.ListPausesRequest, context: Context) -> pb.ListPausesResponse:
        """Open pauses and disputes, oldest first; pages by (opened at, pause id)."""
        tenant = current_tenant()
        size = request.page.page_size or 50
        if not 1 <= size <= MAX_PAGE:
            raise _invalid("page.page_size", f"1..{MAX_PAGE}")
        kind = request.kind.strip()
        if kind not in ("", "pause", "dispute"):
            raise _invalid("kind", "pause, dispute, or empty for both")
        query: Doc = {"tenant_id": tenant.id, "open": True, **({"kind": kind} if kind else {})}
        if request.page.page_token:
            since, after = _held_token(request.page.page_token)
            query["$or"] = [{"opened_at": {"$gt": since}}, {"opened_at": since, "_id": {"$gt": after}}]
        found = (
            await self._store.pauses.find(query)
            .sort([("opened_at", 1), ("_id", 1)])
            .limit(size + 1)
            .to_list()
        )
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = _encode_token(f"{last['opened_at'].isoformat()}|{last['_id']}")
        page = found[:size]
        cases = {
            c["_id"]: c
            async for c in self._store.cases.find(
                {"_id": {"$in": sorted({p["invoice_id"] for p in page})}},
                projection={"number": 1, "customer_id": 1, "balance_minor": 1, "currency": 1},
            )
        }
        return pb.ListPausesResponse(
            pauses=[_pause_pb(p, cases.get(p["invoice_id"], {})) for p in page],
            page=cpb.PageResponse(next_page_token=token),
        )

    async def ListHeld(self, request: pb.ListHeldRequest, context: Context) -> pb.ListHeldResponse:
        """Oldest hold first; pages by (since, invoice id), so a page does not shift while steps are
        held or released between two calls."""
        tenant = current_tenant()
        size = request.page.page_size or 50
        if not 1 <= size <= MAX_PAGE:
            raise _invalid("page.page_size", f"1..{MAX_PAGE}")
        query: Doc = {"tenant_id": tenant.id, "held": {"$exists": True}}
        if request.page.page_token:
            since, after = _held_token(request.page.page_token)
            query["$or"] = [{"held.since": {"$gt": since}}, {"held.since": since, "_id": {"$gt": after}}]
        cursor = self._store.cases.find(query).sort([("held.since", 1), ("_id", 1)]).limit(size + 1)
        found = await cursor.to_list()
        token = ""
        if len(found) > size:
            last = found[size - 1]
            token = _encode_token(f"{last['held']['since'].isoformat()}|{last['_id']}")
        return pb.ListHeldResponse(
            held=[_held_pb(c) for c in found[:size]], page=cpb.PageResponse(next_page_token=token)
        )

    async def GetCase(self, request: pb.GetCaseRequest, context: Context) -> pb.Case:
        tenant = current_tenant()
        invoice_id = _required(request.invoice_id, "invoice_id", MAX_ID)
        case = await self._store.cases.find_one({"_id": invoice_id})
        if case is None or case.get("tenant_id") != tenant.id or not is_known(case):
            raise NotFound(f"no invoice {invoice_id} known to dunning")
        jurisdiction = (await self._tenants.of(tenant.id)).jurisdiction
        policy = await self._stepper.policy_for(case)
        now = self._clock.now()
        state = invoice_state(case)
        rates = self._stepper.rates[jurisdiction]
        decision = decide(
            state, policy, now, holds_of([case], None, calendar_for(policy.jurisdiction)), rates=rates
        )
        today = now.astimezone(TIMEZONES[jurisdiction]).date()
        interest = 0
        if case.get("status") not in SETTLED:
            interest = accrue(state.principal_minor, state.due_date, today, rates, state.payments).minor
        step = decision.step
        outcome: str = decision.outcome
        reason: str = decision.reason
        next_at = _at(step.at) if step is not None and outcome == "waiting" else ""
        answer = self._stepper.answer_due(case, now)
        if outcome == "due" and answer is not None:
            # The last step is not answered by the ledger yet: the next waits for its answer.
            outcome, reason, next_at = "waiting", "awaiting_ledger", _at(answer)
        return pb.Case(
            invoice_id=case["_id"],
            invoice_number=case.get("number", ""),
            customer_id=case.get("customer_id", ""),
            status=case.get("status", ""),
            stage=int(case.get("stage", 0)),
            jurisdiction=jurisdiction,
            debtor_kind=case.get("customer_kind", ""),
            due_date=case.get("due_date", ""),
            currency=case.get("currency", ""),
            balance_minor=int(case.get("balance_minor", 0)),
            interest_to_date_minor=interest,
            steps=[
                _step_pb(aid, s)
                for aid, s in sorted(
                    case.get("steps", {}).items(), key=lambda kv: (kv[1].get("on", ""), kv[1].get("index", 0))
                )
            ],
            outcome=outcome,
            reason=reason,
            next_step=step.kind if step is not None else "",
            next_at=next_at,
            holds=[
                pb.Hold(kind=h.kind, reason=h.reason, reference=h.reference, until=_at(h.until))
                for h in decision.holds
            ],
            skipped=list(case.get("skipped", [])),
        )

    async def GetPayerHistory(self, request: pb.GetPayerHistoryRequest, context: Context) -> pb.PayerHistory:
        tenant = current_tenant()
        customer_id = _required(request.customer_id, "customer_id", MAX_ID)
        settled = 0
        on_time = 0
        late_days = 0
        reminders = 0
        by_channel: Counter[str] = Counter()
        paid_after: Counter[str] = Counter()
        late_before = False
        async for case in self._store.cases.find({"tenant_id": tenant.id, "customer_id": customer_id}):
            applied = [
                s
                for s in case.get("steps", {}).values()
                if s.get("state") == "applied" and s.get("kind") in ("nudge", "reminder", "collection_notice")
            ]
            reminders += len(applied)
            for s in applied:
                by_channel[(s.get("channels") or [""])[0]] += 1
            if "settled_on" in case:
                settled += 1
                days = int(case.get("days_late", 0))
                late_days += days
                on_time += days == 0
                late_before = late_before or days >= 3
                if applied:
                    last = max(applied, key=lambda s: s.get("on", ""))
                    paid_after[(last.get("channels") or [""])[0]] += 1
        return pb.PayerHistory(
            customer_id=customer_id,
            invoices_settled=settled,
            paid_on_time=on_time,
            on_time_rate=on_time / settled if settled else 0.0,
            average_days_late=late_days / settled if settled else 0.0,
            reminders_needed=reminders,
            by_channel=[
                pb.ChannelHistory(channel=ch, reminders=n, paid_after=paid_after.get(ch, 0))
                for ch, n in sorted(by_channel.items())
            ],
            late_before=late_before,
        )

    async def GetCollectionExport(
        self, request: pb.GetCollectionExportRequest, context: Context
    ) -> pb.CollectionExport:
        tenant = current_tenant()
        jurisdiction: Jurisdiction = (await self._tenants.of(tenant.id)).jurisdiction
        day = (
            _date(request.day, "day")
            if request.day
            else self._clock.now().astimezone(TIMEZONES[jurisdiction]).date()
        )
        claims = (
            await self._store.exports.find({"tenant_id": tenant.id, "day": day.isoformat()})
            .sort("_id", 1)
            .to_list()
        )
        content = await export_file(self._ledger, tenant.id, claims)
        return pb.CollectionExport(
            day=day.isoformat(),
            claims=len(claims),
            filename=f"collection-{tenant.id}-{day.isoformat()}.jsonl",
            content=content,
            media_type="application/x-ndjson",
        )


_STEP_ORDER: Final = {"nudge": 0, "reminder": 1, "collection_notice": 2, "collection_handoff": 3}


def _held_pb(case: Mapping[str, Any]) -> pb.HeldStep:
    held = case["held"]
    return pb.HeldStep(
        invoice_id=case["_id"],
        invoice_number=case.get("number", ""),
        customer_id=case.get("customer_id", ""),
        step=held.get("step", ""),
        due_since=_at(held.get("since")),
        holds=[
            pb.Hold(
                kind=h["kind"],
                reason=h["reason"],
                reference=h.get("reference", ""),
                until=_at(h.get("until")),
            )
            for h in held.get("holds", [])
        ],
        balance_minor=int(case.get("balance_minor", 0)),
        currency=case.get("currency", ""),
    )


def _step_pb(action_id: str, s: Mapping[str, Any]) -> pb.TakenStep:
    return pb.TakenStep(
        step=s.get("kind", ""),
        action_id=action_id,
        taken_on=s.get("on", ""),
        deadline=s.get("deadline", ""),
        fee_minor=int(s.get("fee", 0)),
        interest_minor=int(s.get("interest", 0)),
        compensation_minor=int(s.get("compensation", 0)),
        state=s.get("state", ""),
        detail=s.get("detail", "") or "; ".join(s.get("notes", [])),
        channels=list(s.get("channels", [])),
    )


def _pause_pb(pause: Doc, case: Doc) -> pb.OpenPause:
    return pb.OpenPause(
        pause_id=pause["_id"],
        invoice_id=pause["invoice_id"],
        invoice_number=case.get("number", ""),
        customer_id=case.get("customer_id", ""),
        kind=pause["kind"],
        reason=pause["reason"],
        actor=pause.get("actor", ""),
        opened_at=_at(pause["opened_at"]),
        until=_at(pause.get("until")),
        balance_minor=int(case.get("balance_minor", 0)),
        currency=case.get("currency", ""),
    )


def _encode_token(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode()


def _held_token(token: str) -> tuple[datetime, str]:
    try:
        since, _, after = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return datetime.fromisoformat(since), after
    except ValueError:
        raise _invalid("page.page_token", "not a token from this call") from None


def _required(value: str, field: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise _invalid(field, "required")
    if len(text) > limit:
        raise _invalid(field, f"at most {limit} characters")
    return text


def _date(text: str, field: str) -> date:
    try:
        return parse_iso_date(text.strip())
    except ValueError as exc:
        raise _invalid(field, str(exc)) from None


def _until(text: str, now: datetime) -> datetime:
    value = text.strip()
    try:
        at = (
            datetime.combine(parse_iso_date(value), time(0), tzinfo=UTC)
            if len(value) == 10
            else datetime.fromisoformat(value.replace("Z", "+00:00"))
        )
    except ValueError:
        raise _invalid("until", "an RFC 3339 time or a date YYYY-MM-DD") from None
    if at.tzinfo is None:
        raise _invalid("until", "a time needs its offset (Z or +01:00)")
    if at <= now:
        raise _invalid("until", "in the past")
    return at.astimezone(UTC)
