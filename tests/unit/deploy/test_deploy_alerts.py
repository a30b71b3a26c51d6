"""The alert rules (deploy/prometheus/rules/): Prometheus' own tools accept them (`promtool check
config` with the compose stack's config, which loads them) and their unit tests pass (`promtool test
rules`: each alert fires when it should and stays quiet otherwise); every alert is unit-tested, has a
severity and a runbook in docs/operations.md, and reads only series that exist."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.unit.deploy.files import DEPLOY, ROOT
from tests.unit.deploy.promql import KAFKA_EXPORTER, SCRAPE, read
from tests.unit.deploy.test_deploy_dashboard import exposed_series, instruments_in_code
from tests.unit.deploy.tools import run, tool

PROMETHEUS = DEPLOY / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.test.yml"))


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_promtool_accepts_the_config_and_its_rules() -> None:
    promtool = tool("promtool", "Debian prometheus")
    assert RULE_FILES
    done = run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in done.stdout, done.stdout


def test_the_alerts_unit_tests_pass() -> None:
    promtool = tool("promtool", "Debian prometheus")
    assert TEST_FILES
    done = run(
        [promtool, "test", "rules", *(str(p.relative_to(PROMETHEUS)) for p in TEST_FILES)], cwd=PROMETHEUS
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested_firing() -> None:
    fired = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    assert {a["alert"] for a in alerts()} <= fired


def test_every_alert_has_a_severity_and_a_runbook() -> None:
    operations = (ROOT / "docs/operations.md").read_text()
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", operations, re.MULTILINE)}
    for alert in alerts():
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("/docs/operations.md"), url
        assert anchor in anchors, f"{alert['alert']}: no heading in docs/operations.md for #{anchor}"


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return set(exposed_series(instruments_in_code()))


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: str(a["alert"]))
def test_every_alert_reads_series_that_exist(alert: dict[str, Any], exported: set[str]) -> None:
    query = read(alert["expr"])
    assert query.selectors, alert["alert"]
    for selector in query.selectors:
        name = selector.name
        if name.startswith("fordring_"):
            assert name in exported, f"{alert['alert']}: no service exports {name}"
            assert selector.labels.get("job") == "fordring", (
                f"{alert['alert']}: {name} not limited to job=fordring"
            )
        else:
            assert name in KAFKA_EXPORTER | SCRAPE, f"{alert['alert']}: where does {name} come from?"


def test_the_runbooks_links_lead_somewhere() -> None:
    operations = (ROOT / "docs/operations.md").read_text()
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", operations, re.MULTILINE)}
    links = re.findall(r"\]\(#([\w-]+)\)", operations)
    assert links
    assert not [link for link in links if link not in anchors]
