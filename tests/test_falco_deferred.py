"""Tests for reading an alert's output-text fields only when they are asked for."""

import json

import pytest

from falco_risk.falco import read_alert
from falco_risk.kv_text import read_output

OUTPUTS = [
    "10:00:00.000000000: Notice A shell was spawned in a container with an attached "
    "terminal | user=root process=bash command=bash -il container_name=web",
    "10:00:00.000000000: Notice A shell was spawned in a container with an attached "
    "terminal (user=root shell=bash parent=<NA> cmdline=bash  terminal=34816)",
    "10:00:00.000000000: Warning Sensitive file opened for reading (user=root "
    "command=cat /etc/shadow file=/etc/shadow) web (id=0123456789ab)",
    "10:00:00.000000000: Notice Unexpected connection with no field list at all",
]


def json_alert(output: str, **output_fields: object) -> str:
    """Falco's JSON alert with the given output text and output_fields."""
    return json.dumps(
        {"output": output, "priority": "Notice", "rule": "R", "output_fields": output_fields}
    )


@pytest.mark.parametrize("output", OUTPUTS)
def test_deferred_text_fields_are_those_of_reading_the_output(output: str) -> None:
    """Fields read late are exactly the fields and origins read_output gives."""
    eager = read_output(output.split(": ", 1)[1].split(" ", 1)[1])

    alert = read_alert(json_alert(output), {})

    assert alert is not None
    assert dict(alert.text_fields) == eager.fields
    expected_origins = dict.fromkeys(eager.from_container_info, "output text (container.info)")
    assert dict(alert.text_field_origins) == expected_origins


def test_field_missing_from_output_fields_is_read_from_the_text() -> None:
    """A key output_fields lacks is still found in the output text, with its origin."""
    alert = read_alert(json_alert(OUTPUTS[0], **{"proc.name": "bash"}), {})

    assert alert is not None
    found = alert.field(("user.name", "user"))
    assert found is not None
    assert (found.value, found.origin) == ("root", "output text (user=)")
    assert alert.field(("proc.name", "process")).value == "bash"  # type: ignore[union-attr]


def test_alerts_are_equal_whether_or_not_their_fields_were_read() -> None:
    """Reading the text fields of one alert does not make it differ from a fresh one."""
    first = read_alert(json_alert(OUTPUTS[1]), {})
    second = read_alert(json_alert(OUTPUTS[1]), {})
    assert first is not None
    assert second is not None

    fields = dict(first.text_fields)

    assert fields["user"] == "root"
    assert first == second
    assert repr(first) == repr(second)


def test_internal_alerts_fields_are_unquoted_when_read_late() -> None:
    """Internal events' JSON-quoted values are unquoted on the deferred read too."""
    output = 'Falco internal: syscall event drop. | n_drops="15" ebpf_enabled="1"'
    body = json.dumps(
        {"output": output, "priority": "Debug", "rule": "Falco internal", "source": "internal"}
    )

    alert = read_alert(body, {})

    assert alert is not None
    assert alert.source == "internal"
    assert alert.text_fields["n_drops"] == "15"
