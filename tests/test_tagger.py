"""Tests for applying the seed detection to records."""

from collections import Counter

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from falco_risk.catalog import load_catalog
from falco_risk.tagger import Tagger
from otlp_builders import attributes, falco_json, records, request_with

SHELL_OUTPUT = (
    "10:00:00.000000000: Notice A shell was spawned in a container with an attached "
    "terminal (user=root process=bash)"
)
SHELL_FIELDS = {
    "container.image.repository": "docker.io/library/nginx",
    "container.image.tag": "1.27",
    "container.name": "web",
    "proc.pname": "runc",
    "proc.exepath": "/usr/bin/bash",
    "proc.name": "bash",
    "user.name": "root",
    "proc.cmdline": "bash -il",
    "container.id": "0123456789ab",
    "k8s.ns.name": "shop",
    "k8s.pod.name": "web-7d9f",
}

EXPECTED_SEED_ATTRIBUTES = {
    "container_image": "docker.io/library/nginx",
    "container_image_tag": "1.27",
    "container_name": "web",
    "parent": "runc",
    "proc_exepath": "/usr/bin/bash",
    "process": "bash",
    "user": "root",
    "command": "bash -il",
    "container_id": "0123456789ab",
    "k8s_ns": "shop",
    "k8s_pod_name": "web-7d9f",
    "risk_score": "49",
    "risk_object": "root",
    "risk_object_type": "user",
    "risk_message": "A shell is spawned in the container web by user root.",
    "annotations.mitre_attack": ["T1204"],
    "annotations.mitre_attack.mitre_technique": ["User Execution"],
    "annotations.mitre_attack.mitre_tactic": ["Execution"],
    "annotations.mitre_attack.mitre_tactic_id": ["TA0002"],
    "annotations.kill_chain_phases": ["Installation"],
    "annotations.nist": ["DE.AE"],
    "annotations.cis20": ["CIS 13"],
    "annotations.impact": "70",
    "annotations.confidence": "70",
    "analyticstories": ["Kubernetes Security"],
    "security_rule.name": "Kubernetes Falco Shell Spawned",
    "security_rule.uuid": "d2feef92-d54a-4a19-8306-b47c6ceba5b2",
    "security_rule.version": "1",
    "security_rule.category": "Anomaly",
    "security_rule.ruleset.name": "Splunk ESCU",
}


def tag(request: ExportLogsServiceRequest) -> Counter[str]:
    tally = Tagger(load_catalog()).tag(request)
    return Counter(tally.tagged)


def test_shell_alert_gets_every_seed_attribute() -> None:
    """A shell-spawn alert gets the extracted fields, risk, ATT&CK and rule identity."""
    request = request_with(falco_json(SHELL_OUTPUT, **SHELL_FIELDS))

    tagged = tag(request)

    (record,) = records(request)
    assert tagged == {"d2feef92-d54a-4a19-8306-b47c6ceba5b2": 1}
    assert attributes(record) == {"log.iostream": "stdout", **EXPECTED_SEED_ATTRIBUTES}


def test_missing_values_render_as_unknown_and_are_not_invented() -> None:
    """Absent fields are left out, and the message and risk object say 'unknown'."""
    output = "10:00:00.0: Notice A shell was spawned in a container with an attached terminal"
    request = request_with(falco_json(output, **{"proc.name": "sh", "user.name": "<NA>"}))

    tag(request)

    tagged = attributes(records(request)[0])
    assert tagged["risk_message"] == "A shell is spawned in the container unknown by user unknown."
    assert tagged["risk_object"] == "unknown"
    assert "user" not in tagged
    assert "container_name" not in tagged
    assert tagged["process"] == "sh"


def test_existing_keys_are_replaced_not_duplicated() -> None:
    """A record that already carries risk attributes ends with one value per key."""
    request = request_with(falco_json(SHELL_OUTPUT, **SHELL_FIELDS))
    record = records(request)[0]
    record.attributes.add(key="risk_score").value.string_value = "5"
    record.attributes.add(key="risk_score").value.int_value = 7
    record.attributes.add(key="user").value.string_value = "someone-else"

    tag(request)

    keys = [pair.key for pair in record.attributes]
    assert len(keys) == len(set(keys))
    assert attributes(record)["risk_score"] == "49"
    assert attributes(record)["user"] == "root"


def test_other_records_are_unchanged() -> None:
    """Other rules' alerts and plain logs keep their bytes exactly."""
    other = falco_json(
        "10:00:00.0: Warning Sensitive file opened for reading (user=root file=/etc/shadow)",
        rule="Read sensitive file untrusted",
        **{"user.name": "root"},
    )
    request = request_with(other, "GET /healthz 200", falco_json(SHELL_OUTPUT, **SHELL_FIELDS))
    before = [r.SerializeToString() for r in records(request)[:2]]

    tagged = tag(request)

    assert sum(tagged.values()) == 1
    assert [r.SerializeToString() for r in records(request)[:2]] == before


def test_phrase_is_matched_regardless_of_case() -> None:
    """Splunk's quoted phrase ignores case, and so does the seed detection."""
    request = request_with(falco_json(SHELL_OUTPUT.upper(), **SHELL_FIELDS))

    assert sum(tag(request).values()) == 1


def test_malformed_alert_is_counted_and_left_untouched() -> None:
    """A truncated Falco JSON alert is counted and its record keeps its bytes."""
    broken = falco_json(SHELL_OUTPUT, **SHELL_FIELDS)[:-40]
    request = request_with(broken)
    before = request.SerializeToString()

    tally = Tagger(load_catalog()).tag(request)

    assert tally.malformed == 1
    assert tally.tagged == {}
    assert request.SerializeToString() == before


def test_prefilter_rejects_requests_without_the_phrase() -> None:
    """The byte search says no only when no record can match."""
    tagger = Tagger(load_catalog())

    assert tagger.may_match(b"xx A SHELL WAS SPAWNED IN A CONTAINER xx")
    assert not tagger.may_match(request_with("hello", "world").SerializeToString())
