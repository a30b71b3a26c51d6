"""`fordring sandbox clock`: refused (exit 2) unless the local stack runs on a sandbox clock, bounded,
and waiting for what each service reports; `fordring up` gives every service the clock."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from services.cli.__main__ import cli
from services.cli.components import PortChoice, Tier, plan_stack
from services.cli.home import Home
from services.cli.sandbox_clock import describe_offset, service_offsets, wait_for_offset


def fordring(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args], catch_exceptions=False)


def said(done: Result) -> str:
    """The output as one line (the console wraps it at its width)."""
    return " ".join(done.output.split())


def write_stack(home: Path, **record: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    stack = {"mongo": "mongodb://127.0.0.1:1/?directConnection=true", "http": {}, **record}
    (home / "stack.json").write_text(json.dumps(stack))


def test_refused_without_a_stack(tmp_path: Path) -> None:
    done = fordring(tmp_path, "sandbox", "clock", "advance", "--days", "20")
    assert done.exit_code == 2
    assert "no stack runs from" in said(done)


def test_refused_on_a_stack_without_a_sandbox_clock(tmp_path: Path) -> None:
    write_stack(tmp_path)
    for args in (["advance", "--days", "20"], ["show"]):
        done = fordring(tmp_path, "sandbox", "clock", *args)
        assert done.exit_code == 2, done.output
        assert "has no sandbox clock" in said(done)
        assert '"sandbox_clock": true' in said(done)


def test_refused_towards_a_deployment(tmp_path: Path) -> None:
    write_stack(tmp_path, sandbox_clock=True)
    done = fordring(
        tmp_path, "--target", "fordring.example:443", "sandbox", "clock", "advance", "--days", "1"
    )
    assert done.exit_code == 2
    assert "names a deployment" in said(done)


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ([], "more than zero"),
        (["--days", "0"], "more than zero"),
        (["--days", "-3"], "-3"),
        (["--days", "3651"], "3651"),
        (["--days", "3650", "--hours", "1"], "at most 3650 days"),
    ],
)
def test_how_far_is_positive_and_bounded(tmp_path: Path, args: list[str], why: str) -> None:
    write_stack(tmp_path, sandbox_clock=True)
    done = fordring(tmp_path, "sandbox", "clock", "advance", *args)
    assert done.exit_code == 2
    assert why in said(done)


def test_fordring_up_gives_every_service_the_clock_and_says_so(tmp_path: Path) -> None:
    plan = plan_stack(Home(tmp_path), PortChoice(), "key", "/bin/tansu")
    services = [c for c in plan.components if c.tier is Tier.SERVICE]
    assert services
    assert all(c.env["FORDRING_SANDBOX_CLOCK"] == "true" for c in services)
    assert plan.record({}, "now")["sandbox_clock"] is True


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (45, "45 s"), (7500, "2 h 5 min"), (86400, "1 day"), (40 * 86400 + 3 * 3600, "40 days 3 h")],
)
def test_offsets_read_as_people_say_them(seconds: float, text: str) -> None:
    assert describe_offset(seconds) == text


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, dict[str, str]]]:
    """A /metrics endpoint that says what the test puts in `body["text"]`."""
    body = {"text": ""}

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = body["text"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", body
    finally:
        server.shutdown()
        server.server_close()


def test_waits_for_every_service_to_report_the_offset(metrics_server: tuple[str, dict[str, str]]) -> None:
    url, body = metrics_server
    urls = {"ledger": url, "gone": "http://127.0.0.1:1"}
    body["text"] = (
        "# TYPE fordring_sandbox_clock_offset_seconds gauge\n"
        'fordring_sandbox_clock_offset_seconds{otel_scope_name="fordring.runtime",service="a"} 172800.0\n'
        'fordring_sandbox_clock_offset_seconds{otel_scope_name="fordring.runtime",service="b"} 86400.0\n'
    )
    assert service_offsets(urls) == {"ledger": 86400.0, "gone": None}
    late = wait_for_offset(urls, 2 * 86400.0, 0.3)
    assert late == {"ledger": "still uses 86400 s", "gone": "does not report the sandbox clock"}
    assert wait_for_offset({"ledger": url}, 86400.0, 0.3) == {}
    body["text"] = "fordring_outbox_unsent 0.0\n"
    assert wait_for_offset({"ledger": url}, 1.0, 0.0) == {"ledger": "does not report the sandbox clock"}
