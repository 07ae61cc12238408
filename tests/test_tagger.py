"""Tests for applying the seed detection to records."""

import datetime as dt
from collections import Counter
from dataclasses import replace
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from falco_risk.catalog import Catalog, load_catalog
from falco_risk.detection import RiskObject
from falco_risk.otlp_values import set_attributes
from falco_risk.tagger import Tagger, _size_bound
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

SEED_ID = "d2feef92-d54a-4a19-8306-b47c6ceba5b2"
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
    output = (
        "10:00:00.000000000: Notice A shell was spawned in a container with an attached terminal"
    )
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


def two_detection_catalog(tmp_path: Path, seed_score: str = "") -> Catalog:
    """The seed plus a rule-keyed detection scoring 60, with a CI suppression."""
    text = f"""
detections:
  - id: falco-terminal-shell
    name: Terminal shell in container
    version: 1
    type: TTP
    match: {{rule: Terminal shell in container}}
    fields: {{user: [user.name], namespace: [k8s.ns.name]}}
    mitre_attack:
      - technique_id: T1059
        technique: Command and Scripting Interpreter
        tactic: Execution
        tactic_id: TA0002
    risk:
      objects: [{{field: user, type: user, score: 60}}]
      message: Terminal shell by $user$.
    suppressions:
      - name: ci-namespace
        reason: CI jobs open shells in their runners
        when: {{field: {{name: namespace, equals: ci}}}}
{seed_score}"""
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return load_catalog([str(path)])


def test_highest_score_wins_and_all_matches_are_listed(tmp_path: Path) -> None:
    """Two matches: the record gets the higher-scored detection and lists both names."""
    request = request_with(falco_json(SHELL_OUTPUT, **SHELL_FIELDS))

    tally = Tagger(two_detection_catalog(tmp_path)).tag(request)

    tagged = attributes(records(request)[0])
    assert tally.tagged == {"falco-terminal-shell": 1}
    assert tagged["risk_score"] == "60"
    assert tagged["annotations.mitre_attack"] == ["T1059"]
    assert tagged["falco_risk.matched_detections"] == [
        "Kubernetes Falco Shell Spawned",
        "Terminal shell in container",
    ]
    assert "container_name" not in tagged  # the loser's fields are not merged in


def test_equal_scores_go_to_the_earlier_detection(tmp_path: Path) -> None:
    """With equal scores the detection earlier in the catalog wins."""
    catalog = two_detection_catalog(tmp_path)
    seed = replace(catalog.detections[0], risk_objects=(RiskObject("user", "user", 60),))
    request = request_with(falco_json(SHELL_OUTPUT, **SHELL_FIELDS))

    Tagger(Catalog((seed, catalog.detections[1]))).tag(request)

    assert attributes(records(request)[0])["security_rule.uuid"] == SEED_ID


def test_suppressed_match_is_skipped_and_counted_without_stopping_others(tmp_path: Path) -> None:
    """A suppression of one detection leaves the record to the other matching detection."""
    fields = {**SHELL_FIELDS, "k8s.ns.name": "ci"}
    request = request_with(falco_json(SHELL_OUTPUT, **fields))

    tally = Tagger(two_detection_catalog(tmp_path)).tag(request)

    tagged = attributes(records(request)[0])
    assert tally.suppressed == {("falco-terminal-shell", "ci-namespace"): 1}
    assert tally.tagged == {SEED_ID: 1}
    assert tagged["risk_score"] == "49"
    assert "falco_risk.matched_detections" not in tagged


def test_record_whose_every_match_is_suppressed_keeps_its_bytes(tmp_path: Path) -> None:
    """Suppressed records are forwarded untouched."""
    disable_seed = f"  - {{id: {SEED_ID}, enabled: false}}\n"
    fields = {**SHELL_FIELDS, "k8s.ns.name": "ci"}
    request = request_with(falco_json(SHELL_OUTPUT, **fields))
    before = request.SerializeToString()

    tally = Tagger(two_detection_catalog(tmp_path, disable_seed)).tag(request)

    assert tally.tagged == {}
    assert tally.suppressed == {("falco-terminal-shell", "ci-namespace"): 1}
    assert request.SerializeToString() == before


def test_expired_suppression_no_longer_applies(tmp_path: Path) -> None:
    """Past its expiry date a suppression is ignored."""
    catalog = two_detection_catalog(tmp_path)
    rule_keyed = catalog.detections[1]
    (suppression,) = rule_keyed.suppressions
    expired = replace(suppression, expires=dt.date(2020, 1, 1))
    tagger = Tagger(Catalog((replace(rule_keyed, suppressions=(expired,)),)))
    request = request_with(falco_json(SHELL_OUTPUT, **{**SHELL_FIELDS, "k8s.ns.name": "ci"}))

    tally = tagger.tag(request)

    assert tally.tagged == {"falco-terminal-shell": 1}
    assert tally.suppressed == {}


def test_counts_are_kept_by_the_count_by_values() -> None:
    """Each tagged record is counted under the values of the seed's count_by fields."""
    request = request_with(
        falco_json(SHELL_OUTPUT, **SHELL_FIELDS),
        falco_json(SHELL_OUTPUT, **SHELL_FIELDS),
        falco_json(SHELL_OUTPUT, **{**SHELL_FIELDS, "user.name": "alice"}),
    )

    tally = Tagger(load_catalog()).tag(request)

    counted = {dict(pairs)["user"]: count for (_, _, pairs), count in tally.counts.items()}
    assert counted == {"root": 2, "alice": 1}
    (pairs, *_) = [pairs for (_, _, pairs) in tally.counts]
    assert [name for name, _ in pairs] == list(load_catalog().detections[0].count_by)


def test_size_bound_is_never_below_the_encoded_size() -> None:
    """The cheap bound on added attribute bytes is at least what protobuf writes."""
    values = {
        "risk_message": "A shell is spawned in the container wéb by user rööt.",
        "annotations.mitre_attack": ["T1204", "T1059.004"],
        "empty": "",
        "none": [],
    }
    probe = LogRecord()
    set_attributes(probe, values)

    assert _size_bound(values) >= probe.ByteSize()
