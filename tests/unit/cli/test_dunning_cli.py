"""`fordring dunning`: how policies, cases, held steps, dry runs and payer histories are shown, the
options checked before anything is sent, and the commands against a stand-in dunning service and
ledger (numbers resolved to ids, a refused policy's every rule with exit code 2, the JSON shapes, and
`invoices show` with and without a dunning service)."""

# ruff: noqa: N802 - the stand-in servicers' method names are the proto's

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from datetime import date
from pathlib import Path
from typing import Any

import click
import grpc
import pytest
from click.testing import CliRunner
from fordring.common.v1 import common_pb2
from fordring.common.v1 import common_pb2 as cpb
from fordring.dunning.v1 import dunning_pb2 as pb
from fordring.dunning.v1 import dunning_pb2_grpc
from fordring.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from rich.console import Console

from services.cli.__main__ import cli
from services.cli.dunning import simulation_request
from services.cli.dunning_views import (
    case_json,
    held_table,
    local_time,
    next_text,
    policy_entry_json,
    policy_table,
    print_case,
    print_simulation,
    refusal_lines,
    when_text,
)
from services.cli.violations import FieldViolation
from services.dunning.domain.policy import UnlawfulPolicy, check, default_policy, parse_policy

INVOICE_ID = "01a2337b-6ad9-70c5-a890-35e043db4b72"
CUSTOMER_ID = "01a2337b-0000-70c5-a890-35e043db4b72"


def rendered(*renderables: Any, width: int = 160) -> str:
    console = Console(width=width, record=True, force_terminal=False)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def case_text(case: pb.Case) -> str:
    console = Console(width=160, record=True, force_terminal=False)
    print_case(console, case, "C-1001 Kari Nordmann")
    return console.export_text()


def unlawful_policy() -> str:
    doc = json.loads(default_policy("NO", "consumer").to_json())
    doc["steps"][1].update(fee_minor=7_000, offset_days=5)
    return json.dumps(doc)


def sample_case(**over: Any) -> pb.Case:
    values: dict[str, Any] = {
        "invoice_id": INVOICE_ID,
        "invoice_number": "10042",
        "customer_id": CUSTOMER_ID,
        "status": "reminded",
        "stage": 1,
        "jurisdiction": "NO",
        "debtor_kind": "consumer",
        "due_date": "2025-05-02",
        "currency": "NOK",
        "balance_minor": 128_500,
        "interest_to_date_minor": 1_234,
        "steps": [
            pb.TakenStep(
                step="nudge", action_id="a1", taken_on="2025-05-05", state="applied", channels=["sms"]
            ),
            pb.TakenStep(
                step="reminder",
                action_id="a2",
                taken_on="2025-05-16",
                deadline="2025-05-30",
                fee_minor=3_500,
                state="applied",
                channels=["email", "print"],
            ),
        ],
        "outcome": "waiting",
        "reason": "waiting_for_deadline",
        "next_step": "collection_notice",
        "next_at": "2025-05-31T10:00:00Z",
    }
    values.update(over)
    return pb.Case(**values)


# --- how it is shown -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        ({"offset_days": 3}, "3 days after the due date"),
        ({"offset_days": -1, "offset_from": "due_date"}, "1 day before the due date"),
        ({"offset_days": 0}, "on the due date"),
        ({"offset_days": 7, "offset_from": "previous_step"}, "7 days after the previous step"),
        (
            {"offset_days": 0, "offset_from": "previous_deadline"},
            "when the previous step's deadline has passed",
        ),
        (
            {"offset_days": 2, "offset_from": "previous_deadline"},
            "2 days after the previous step's deadline has passed",
        ),
    ],
)
def test_when_a_step_goes_in_words(step: dict[str, Any], expected: str) -> None:
    assert when_text(step) == expected


def test_a_policy_is_shown_step_by_step_with_fees_in_its_currency() -> None:
    policy = json.loads(default_policy("NO", "consumer").to_json())
    text = rendered(policy_table(policy_entry_json(pb.PolicyResponse(is_default=True), policy)))
    assert "NO consumer policy: the lawful default" in text
    assert "reminder (purring)" in text
    assert "35,00 NOK" in text
    assert "14 days" in text
    assert "when the previous step's deadline" in text
    assert "sent from 08:00 to 20:00 local time; not before 09:00 on business days" in text
    saved = rendered(
        policy_table(
            policy_entry_json(
                pb.PolicyResponse(version=3, updated_at="2025-06-01T10:00:00Z", updated_by="kari"),
                json.loads(default_policy("SE", "consumer").to_json()),
            )
        )
    )
    assert "SE consumer policy: version 3, saved 2025-06-01 10:00:00 by kari" in saved
    assert "180,00 SEK" in saved


def test_every_rule_a_policy_breaks_is_named_with_its_source() -> None:
    with pytest.raises(UnlawfulPolicy) as refused:
        check(parse_policy(unlawful_policy()), date(2025, 6, 1))
    lines = refusal_lines([FieldViolation(v.field, v.description) for v in refused.value.violations])
    rules = [v.rule for v in refused.value.rule_violations]
    assert len(rules) >= 2
    for rule in rules:
        assert f"      {rule.id} — {rule.source}" in lines
    assert "  • steps[1]: a fee on a reminder sent 5 days after the due date" in lines
    # A violation that is not a rule of the law (the policy's shape) is shown as it came.
    assert refusal_lines([FieldViolation("steps.0.kind", "Input should be 'nudge'")]) == [
        "  • steps.0.kind: Input should be 'nudge'"
    ]


def test_a_case_shows_its_stage_money_steps_and_what_comes_next() -> None:
    case = sample_case()
    text = case_text(case)
    assert "Stage             1 (reminded)" in text
    assert "Interest to date  12,34 NOK" in text
    assert "collection notice at 2025-05-31 12:00 Europe/Oslo (waiting for deadline)" in text
    assert "35,00 NOK" in text
    assert "2025-05-30" in text
    data = case_json(case)
    assert (data["stage"], data["stage_name"], data["interest_to_date_minor"]) == (1, "reminded", 1_234)
    assert [s["fee_minor"] for s in data["steps"]] == [0, 3_500]
    held = sample_case(outcome="held", next_at="", holds=[pb.Hold(kind="dispute", reason="goods never came")])
    assert next_text(held) == "collection notice, due but held back (below)"
    assert "disputed: goods never came" in case_text(held)
    assert next_text(sample_case(outcome="done", reason="paid", next_step="")) == "nothing (paid)"


def test_held_steps_say_why_and_until_when_in_local_time() -> None:
    table = held_table(
        [
            pb.HeldStep(
                invoice_number="10042",
                step="reminder",
                due_since="2025-05-16T07:00:00Z",
                balance_minor=50_000,
                currency="NOK",
                holds=[
                    pb.Hold(kind="pause", reason="customer service", until="2025-06-01T22:00:00Z"),
                    pb.Hold(kind="payment_in_review", reason="a payment in the review queue"),
                ],
            )
        ]
    )
    text = rendered(table)
    assert "reminder" in text
    assert "500,00 NOK" in text
    assert "paused: customer service (until 2025-06-02 00:00 Europe/Oslo)" in text
    assert "a payment in the review queue" in text
    assert local_time("2025-01-15T08:00:00Z", "SE") == "2025-01-15 09:00 Europe/Stockholm"


def test_a_dry_run_shows_counts_and_money_per_step_and_channel_and_the_laws_refusals() -> None:
    reply = pb.SimulatePolicyResponse(
        invoices=40,
        currency="NOK",
        period="due 2025-01-01 to 2025-03-31, replayed to 2025-06-01",
        steps=[
            pb.StageCount(step="nudge", channel="sms", count=30),
            pb.StageCount(step="reminder", channel="email", count=12, fees_minor=42_000, interest_minor=1_10),
            pb.StageCount(step="collection_handoff", count=2, interest_minor=5_00),
        ],
        handed_off=2,
        spared_by_payment=9,
        refusals=[
            pb.RuleRefusal(
                rule_id="NO.reminder.deadline",
                message="a deadline of 7 days, under 14",
                field="steps[1]",
                source="inkassoforskriften §1-3",
            )
        ],
        notes=[pb.RuleRefusal(rule_id="NO.reminder_fee.max", message="3 times: kr 70 was the law before")],
    )
    console = Console(width=160, record=True, force_terminal=False)
    print_simulation(console, reply)
    text = console.export_text()
    assert "40 invoices" in text
    assert "420,00 NOK" in text
    assert "hand-off to collection" in text
    assert "total" in text
    assert "44" in text
    assert "Handed to collection: 2 · spared by payment" in text
    assert "NO.reminder.deadline — inkassoforskriften §1-3" in text
    assert "NO.reminder_fee.max: 3 times" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "", "", 10), None),
        (("2025-01-01", "2025-03-31", "2025-06-01", None), None),
        (("2025-01-01", "", "", 30), "--days looks forward"),
        (("", "", "2025-06-01", None), "--until ends a replay"),
    ],
)
def test_a_dry_run_is_a_past_period_or_days_forward_not_both(
    args: tuple[Any, ...], message: str | None
) -> None:
    if message is None:
        request = simulation_request("{}", *args)
        assert (request.due_from, request.days) == (args[0], args[3] or 0)
        return
    with pytest.raises(click.UsageError, match=message):
        simulation_request("{}", *args)


# --- the commands against a stand-in dunning service and ledger -----------------------------------------


class FakeDunning(dunning_pb2_grpc.DunningServiceServicer):
    def __init__(self) -> None:
        self.pauses: list[pb.PauseRequest] = []
        self.resumes: list[pb.ResumeRequest] = []
        self.saved: list[pb.SetPolicyRequest] = []

    def GetPolicy(self, request: pb.GetPolicyRequest, context: grpc.ServicerContext) -> pb.PolicyResponse:
        policy = default_policy(request.jurisdiction, request.debtor_kind)  # type: ignore[arg-type]
        return pb.PolicyResponse(policy_json=policy.to_json(), is_default=True)

    def ListPolicies(
        self, request: pb.ListPoliciesRequest, context: grpc.ServicerContext
    ) -> pb.ListPoliciesResponse:
        return pb.ListPoliciesResponse(
            policies=[
                pb.PolicyResponse(policy_json=default_policy(j, k).to_json(), is_default=True)
                for j in ("NO", "SE")
                for k in ("consumer", "business")
            ]
        )

    def SetPolicy(self, request: pb.SetPolicyRequest, context: grpc.ServicerContext) -> pb.PolicyResponse:
        self.saved.append(request)
        try:
            policy = check(parse_policy(request.policy_json), date(2025, 6, 1))
        except UnlawfulPolicy as refused:
            # As the service's interceptor answers a domain error (services/common/grpc_server.py).
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=refused.message)
            status.details.add().Pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in refused.violations
                    ]
                )
            )
            context.abort_with_status(rpc_status.to_status(status))
        return pb.PolicyResponse(policy_json=policy.to_json(), version=4, updated_by=request.actor)

    def SimulatePolicy(
        self, request: pb.SimulatePolicyRequest, context: grpc.ServicerContext
    ) -> pb.SimulatePolicyResponse:
        return pb.SimulatePolicyResponse(
            invoices=3,
            currency="NOK",
            period=f"due {request.due_from} to {request.due_to}",
            steps=[pb.StageCount(step="reminder", channel="email", count=3, fees_minor=10_500)],
        )

    def Pause(self, request: pb.PauseRequest, context: grpc.ServicerContext) -> pb.PauseResponse:
        self.pauses.append(request)
        return pb.PauseResponse(pause_id="pause-1")

    def Resume(self, request: pb.ResumeRequest, context: grpc.ServicerContext) -> pb.ResumeResponse:
        self.resumes.append(request)
        return pb.ResumeResponse(resumed=1)

    def ListPauses(
        self, request: pb.ListPausesRequest, context: grpc.ServicerContext
    ) -> pb.ListPausesResponse:
        return pb.ListPausesResponse()

    def ListHeld(self, request: pb.ListHeldRequest, context: grpc.ServicerContext) -> pb.ListHeldResponse:
        # Two pages of one: the CLI follows the token.
        number = "10042" if not request.page.page_token else "10043"
        return pb.ListHeldResponse(
            held=[
                pb.HeldStep(
                    invoice_id=INVOICE_ID,
                    invoice_number=number,
                    step="reminder",
                    due_since="2025-05-16T07:00:00Z",
                    balance_minor=50_000,
                    currency="NOK",
                    holds=[pb.Hold(kind="dispute", reason="goods never came")],
                )
            ],
            page=cpb.PageResponse(next_page_token="" if request.page.page_token else "1"),
        )

    def GetCase(self, request: pb.GetCaseRequest, context: grpc.ServicerContext) -> pb.Case:
        if request.invoice_id != INVOICE_ID:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no invoice {request.invoice_id} known to dunning")
        return sample_case()

    def GetPayerHistory(
        self, request: pb.GetPayerHistoryRequest, context: grpc.ServicerContext
    ) -> pb.PayerHistory:
        assert request.customer_id == CUSTOMER_ID
        return pb.PayerHistory(
            customer_id=CUSTOMER_ID,
            invoices_settled=4,
            paid_on_time=3,
            on_time_rate=0.75,
            average_days_late=2.5,
            reminders_needed=1,
            by_channel=[pb.ChannelHistory(channel="email", reminders=1, paid_after=1)],
        )

    def GetCollectionExport(
        self, request: pb.GetCollectionExportRequest, context: grpc.ServicerContext
    ) -> pb.CollectionExport:
        day = request.day or "2025-06-02"
        content = b'{"invoice_number": "10042"}\n' if day == "2025-06-02" else b""
        return pb.CollectionExport(
            day=day,
            claims=1 if content else 0,
            filename=f"collection-t1-{day}.jsonl",
            content=content,
            media_type="application/x-ndjson",
        )


class FakeLedger(ledger_pb2_grpc.LedgerServiceServicer):
    def GetInvoice(
        self, request: ledger_pb2.GetInvoiceRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetInvoiceResponse:
        if request.invoice_number not in ("", "10042") or request.invoice_id not in ("", INVOICE_ID):
            context.abort(grpc.StatusCode.NOT_FOUND, "no such invoice")
        return ledger_pb2.GetInvoiceResponse(
            invoice=ledger_pb2.Invoice(
                id=INVOICE_ID,
                invoice_number="10042",
                customer_number="C-1001",
                customer_name="Kari Nordmann",
                currency="NOK",
                dunning_stage=1,
                charges=[
                    ledger_pb2.Charge(id="c1", kind="reminder_fee", description="purring", amount_minor=3_500)
                ],
                balance=common_pb2.Money(minor_units=128_500, currency="NOK"),
            )
        )

    def GetInvoiceHistory(
        self, request: ledger_pb2.GetInvoiceHistoryRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetInvoiceHistoryResponse:
        return ledger_pb2.GetInvoiceHistoryResponse(
            entries=[ledger_pb2.HistoryEntry(type="reminded", summary="reminder, 3500 NOK added")]
        )

    def GetCustomer(
        self, request: ledger_pb2.GetCustomerRequest, context: grpc.ServicerContext
    ) -> ledger_pb2.GetCustomerResponse:
        if request.customer_number != "C-1001":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such customer")
        return ledger_pb2.GetCustomerResponse(
            customer=ledger_pb2.Customer(id=CUSTOMER_ID, number="C-1001", name="Kari Nordmann")
        )


def _serve(*services: Any) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    for add, servicer in services:
        add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@pytest.fixture(scope="module")
def dunning() -> Iterator[tuple[FakeDunning, str]]:
    fake = FakeDunning()
    for target in _serve(
        (dunning_pb2_grpc.add_DunningServiceServicer_to_server, fake),
        (ledger_pb2_grpc.add_LedgerServiceServicer_to_server, FakeLedger()),  # type: ignore[abstract]
    ):
        yield fake, target


@pytest.fixture(scope="module")
def ledger_only() -> Iterator[str]:
    yield from _serve((ledger_pb2_grpc.add_LedgerServiceServicer_to_server, FakeLedger()))  # type: ignore[abstract]


def run(target: str, *args: str) -> Any:
    return CliRunner().invoke(
        cli, ["--target", target, "--api-key", "k", *args], catch_exceptions=False, env={"COLUMNS": "200"}
    )


def test_policy_show_prints_one_policy_as_the_file_set_takes_or_all_with_their_state(
    dunning: tuple[FakeDunning, str],
) -> None:
    _, target = dunning
    one = json.loads(
        run(
            target, "dunning", "policy", "show", "--jurisdiction", "no", "--kind", "consumer", "--json"
        ).stdout
    )
    assert (one["jurisdiction"], one["debtor_kind"]) == ("NO", "consumer")
    assert parse_policy(json.dumps(one)) == default_policy("NO", "consumer")
    several = json.loads(run(target, "dunning", "policy", "show", "--kind", "business", "--json").stdout)
    assert [(e["jurisdiction"], e["debtor_kind"], e["is_default"]) for e in several] == [
        ("NO", "business", True),
        ("SE", "business", True),
    ]
    table = run(target, "dunning", "policy", "show", "--jurisdiction", "SE")
    assert table.exit_code == 0, table.output
    assert "SE consumer policy" in table.stdout
    assert "SE business policy" in table.stdout


def test_policy_set_saves_a_lawful_policy_and_refuses_an_unlawful_one_naming_every_rule(
    dunning: tuple[FakeDunning, str], tmp_path: Path
) -> None:
    fake, target = dunning
    good = tmp_path / "good.json"
    good.write_text(default_policy("NO", "business").to_json())
    saved = run(target, "dunning", "policy", "set", str(good), "--actor", "kari")
    assert saved.exit_code == 0, saved.output
    assert "The NO business policy from" in saved.stdout
    assert "(version 4)" in saved.stdout
    assert fake.saved[-1].actor == "kari"

    bad = tmp_path / "bad.json"
    bad.write_text(unlawful_policy())
    refused = run(target, "dunning", "policy", "set", str(bad))
    assert refused.exit_code == 2
    assert f"refused: the policy in {bad} breaks" in refused.stderr
    assert "NO.reminder_fee.days_after_due" in refused.stderr
    assert "NO.reminder_fee.max" in refused.stderr

    not_json = tmp_path / "broken.json"
    not_json.write_text("{steps: ")
    assert run(target, "dunning", "policy", "set", str(not_json)).exit_code == 1


def test_simulate_sends_the_period_and_prints_json(dunning: tuple[FakeDunning, str], tmp_path: Path) -> None:
    _, target = dunning
    path = tmp_path / "policy.json"
    path.write_text(default_policy("NO", "consumer").to_json())
    result = run(
        target,
        "dunning",
        "policy",
        "simulate",
        str(path),
        "--from",
        "2025-01-01",
        "--to",
        "2025-03-31",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["period"] == "due 2025-01-01 to 2025-03-31"
    assert data["steps"] == [
        {
            "step": "reminder",
            "channel": "email",
            "count": 3,
            "fees_minor": 10_500,
            "interest_minor": 0,
            "compensation_minor": 0,
        }
    ]
    both = run(target, "dunning", "policy", "simulate", str(path), "--days", "10", "--to", "2025-03-31")
    assert both.exit_code == 2


def test_pause_and_resume_name_the_invoice_by_number_or_id(dunning: tuple[FakeDunning, str]) -> None:
    fake, target = dunning
    paused = run(
        target,
        "dunning",
        "pause",
        "10042",
        "--reason",
        "goods never came",
        "--dispute",
        "--until",
        "2025-07-01",
    )
    assert paused.exit_code == 0, paused.output
    request = fake.pauses[-1]
    assert (request.invoice_id, request.kind, request.reason, request.until) == (
        INVOICE_ID,
        "dispute",
        "goods never came",
        "2025-07-01",
    )
    assert "Dunning of invoice 10042 is disputed until 2025-07-01 (pause pause-1)." in paused.stdout
    by_id = run(target, "dunning", "resume", INVOICE_ID, "--reason", "sorted out")
    assert by_id.exit_code == 0, by_id.output
    assert fake.resumes[-1].invoice_id == INVOICE_ID
    assert "Resumed 1 pause of invoice 10042" in by_id.stdout
    unknown = run(target, "dunning", "pause", "99999", "--reason", "x")
    assert unknown.exit_code == 1
    assert "NOT_FOUND" in unknown.stderr
    assert run(target, "dunning", "pause", "10042").exit_code == 2  # --reason is required


def test_held_case_payer_and_export(dunning: tuple[FakeDunning, str], tmp_path: Path) -> None:
    _, target = dunning
    held = json.loads(run(target, "dunning", "held", "--json").stdout)
    assert [h["invoice_number"] for h in held] == ["10042", "10043"]
    assert held[0]["holds"] == [
        {"kind": "dispute", "reason": "goods never came", "reference": "", "until": ""}
    ]
    assert "2 steps held back." in run(target, "dunning", "held").stdout

    case = run(target, "dunning", "case", "10042")
    assert case.exit_code == 0, case.output
    assert "C-1001 Kari Nordmann" in case.stdout
    assert "collection notice at 2025-05-31 12:00 Europe/Oslo" in case.stdout
    assert (
        json.loads(run(target, "dunning", "case", "10042", "--json").stdout)["interest_to_date_minor"]
        == 1_234
    )

    payer = json.loads(run(target, "dunning", "payer", "C-1001", "--json").stdout)
    assert (payer["customer_number"], payer["on_time_rate"], payer["by_channel"][0]["paid_after"]) == (
        "C-1001",
        0.75,
        1,
    )
    assert "3 (75%)" in run(target, "dunning", "payer", "C-1001").stdout

    out = tmp_path / "claims.jsonl"
    written = run(target, "dunning", "export", "-o", str(out))
    assert written.exit_code == 0, written.output
    assert out.read_bytes() == b'{"invoice_number": "10042"}\n'
    assert "1 claim handed to collection on 2025-06-02" in written.stdout
    none = run(target, "dunning", "export", "--day", "2025-06-03", "-o", str(tmp_path / "none.jsonl"))
    assert "No claims were handed to collection on 2025-06-03." in none.stdout
    assert not (tmp_path / "none.jsonl").exists()


def test_invoices_show_has_the_dunning_case_when_there_is_a_dunning_service(
    dunning: tuple[FakeDunning, str], ledger_only: str
) -> None:
    _, target = dunning
    shown = run(target, "invoices", "show", "10042", "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["invoice"]["dunning_stage"] == 1
    assert [(c["kind"], c["amount_minor"]) for c in data["invoice"]["charges"]] == [("reminder_fee", "3500")]
    assert data["dunning"]["interest_to_date_minor"] == 1_234
    assert [s["step"] for s in data["dunning"]["steps"]] == ["nudge", "reminder"]
    text = run(target, "invoices", "show", "10042").stdout
    assert "Dunning stage  1 (reminded)" in text
    assert "Interest to date  12,34 NOK" in text

    # No dunning service where the CLI points: the field is left out, nothing fails.
    alone = run(ledger_only, "invoices", "show", "10042", "--json")
    assert alone.exit_code == 0, alone.output
    assert "dunning" not in json.loads(alone.stdout)
    assert "Interest to date" not in run(ledger_only, "invoices", "show", "10042").stdout
