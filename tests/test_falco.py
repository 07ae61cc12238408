"""Tests for reading Falco alerts from every record shape and Falco generation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falco_risk.falco import FalcoAlert, FieldValue, MalformedAlertError, read_alert

DATA = Path(__file__).parent / "testdata" / "falco"

# The detection catalog's spellings of each logical field across generations.
ALIASES: dict[str, tuple[str, ...]] = {
    "container_image": (
        "container.image.repository",
        "container_image",
        "container_image_repository",
        "image",
    ),
    "container_image_tag": ("container.image.tag", "container_image_tag"),
    "container_name": ("container.name", "container_name"),
    "process": ("proc.name", "process", "shell"),
    "proc_exepath": ("proc.exepath", "proc_exepath"),
    "parent": ("proc.pname", "parent"),
    "user": ("user.name", "user"),
    "command": ("proc.cmdline", "command", "cmdline"),
    "container_id": ("container.id", "container_id"),
    "k8s_ns": ("k8s.ns.name", "k8s_ns", "k8s_ns_name", "k8s.ns"),
    "k8s_pod_name": ("k8s.pod.name", "k8s_pod_name", "k8s.pod"),
}

# Each `<name>.expected.json` holds the alert and alias values that
# `<name>.log` (a log body) or `<name>.record.json` (body and attributes)
# must read to.
GOLDEN = sorted(path.name.removesuffix(".expected.json") for path in DATA.glob("*.expected.json"))


def _line(name: str) -> str:
    """Return a one-line fixture as a log body."""
    return (DATA / name).read_text(encoding="utf-8").rstrip("\n")


def _lines(name: str) -> list[str]:
    """Return the lines of a many-line fixture."""
    return (DATA / name).read_text(encoding="utf-8").splitlines()


def _record(name: str) -> tuple[object, dict[str, object]]:
    """Return the body and attributes of a record fixture."""
    record = json.loads((DATA / name).read_text(encoding="utf-8"))
    return record["body"], record["attributes"]


def _input(name: str) -> tuple[object, dict[str, object]]:
    """Return the body and attributes of a golden case."""
    log = DATA / f"{name}.log"
    if log.exists():
        return _line(log.name), {}
    return _record(f"{name}.record.json")


def _expected(name: str) -> dict[str, object]:
    """Return the golden expectations of a case."""
    expected: dict[str, object] = json.loads(
        (DATA / f"{name}.expected.json").read_text(encoding="utf-8")
    )
    return expected


def _as_json(alert: FalcoAlert) -> dict[str, object]:
    """Write an alert's compared fields as the golden files spell them."""
    written: dict[str, object] = {}
    for field in dataclasses.fields(alert):
        if field.compare:
            value = getattr(alert, field.name)
            written[field.name] = list(value) if field.name == "tags" else value
    written["output_fields"] = dict(alert.output_fields)
    written["text_fields"] = dict(alert.text_fields)
    return written


def _resolved(alert: FalcoAlert) -> dict[str, dict[str, str] | None]:
    """Resolve every alias list of the catalog against `alert`."""
    resolved: dict[str, dict[str, str] | None] = {}
    for name, keys in ALIASES.items():
        found = alert.field(keys)
        resolved[name] = None if found is None else {"value": found.value, "origin": found.origin}
    return resolved


# --- golden cases ------------------------------------------------------------


@pytest.mark.parametrize("name", GOLDEN)
def test_read_alert_matches_golden_file(name: str) -> None:
    """Each fixture reads to exactly the alert and alias values in its golden file."""
    body, attributes = _input(name)
    expected = _expected(name)

    alert = read_alert(body, attributes)

    assert alert is not None
    assert _as_json(alert) == expected["alert"]
    assert _resolved(alert) == expected["fields"]


def test_golden_files_cover_every_shape() -> None:
    """The golden cases hold alerts of all four shapes, internal events included."""
    alerts = [_expected(name)["alert"] for name in GOLDEN]

    shapes = {alert["shape"] for alert in alerts if isinstance(alert, dict)}
    sources = {alert["source"] for alert in alerts if isinstance(alert, dict)}

    assert shapes == {"json", "text", "map", "attributes"}
    assert {"internal", "syscall", None} <= sources


def test_read_alert_bytes_body_reads_like_text() -> None:
    """A bytes body holding UTF-8 reads like the same string body."""
    body = _line("json-0.3x.log")

    alert = read_alert(body.encode("utf-8"), {})

    assert alert == read_alert(body, {})


def test_read_alert_sidekick_without_priority_takes_header_priority() -> None:
    """falcosidekick's empty priority falls back to the priority in the text."""
    body, attributes = _record("attributes-sidekick-otlp.record.json")
    attributes["priority"] = ""

    alert = read_alert(body, attributes)

    assert alert is not None
    assert (alert.shape, alert.rule, alert.priority) == (
        "attributes",
        "Read sensitive file untrusted",
        "Warning",
    )


def test_read_alert_body_json_wins_over_attributes() -> None:
    """A JSON alert body is read as JSON even when attributes carry alert keys."""
    body = _line("json-0.3x.log")
    attributes: dict[str, object] = {"rule": "other", "priority": "Debug", "output": "x"}

    alert = read_alert(body, attributes)

    assert alert is not None
    assert (alert.shape, alert.rule, alert.priority) == (
        "json",
        "Terminal shell in container",
        "Critical",
    )


def test_read_alert_json_without_output_property() -> None:
    """JSON written with json_include_output_property off is an alert without text."""
    body = (
        '{"priority":"Notice","rule":"Terminal shell in container",'
        '"time":"2024-01-02T03:04:05.000000006Z","output_fields":{"proc.name":"sh"}}'
    )

    alert = read_alert(body, {})

    assert alert is not None
    assert (alert.shape, alert.text, alert.message, alert.time) == (
        "json",
        "",
        "",
        "2024-01-02T03:04:05.000000006Z",
    )
    assert alert.field(["proc.name"]) == FieldValue("sh", "output_fields[proc.name]")


def test_read_alert_attributes_take_host_of_syslog_prefix() -> None:
    """Without a `hostname` attribute, the host of the body's syslog prefix is used."""
    body = "Jan  2 03:04:05 node-4 falco[1]: 03:04:05.000000006: Notice Shell (user=root)"
    attributes: dict[str, object] = {"rule": "Terminal shell in container", "priority": ""}

    alert = read_alert(body, attributes)

    assert alert is not None
    assert (alert.shape, alert.hostname, alert.priority, alert.text) == (
        "attributes",
        "node-4",
        "Notice",
        "03:04:05.000000006: Notice Shell (user=root)",
    )


# --- field lookup ------------------------------------------------------------


def test_field_prefers_output_fields_over_earlier_text_key() -> None:
    """Output fields win over text fields even when the text key is listed first."""
    alert = read_alert(_line("json-0.2x-jsoncpp.log"), {})
    assert alert is not None

    found = alert.field(["cmdline", "proc.cmdline"])

    assert found == FieldValue("bash ", "output_fields[proc.cmdline]")


def test_field_returns_none_when_no_key_is_present() -> None:
    """A lookup of keys the alert lacks returns None."""
    alert = read_alert(_line("text-compose.log"), {})
    assert alert is not None

    found = alert.field(["proc.name", "process", "shell"])

    assert found is None


# --- key=value reading -------------------------------------------------------


def _fields_of(fields: str) -> dict[str, str]:
    """Text fields of a made-up alert whose field list is `fields`."""
    alert = read_alert(f"10:11:12.131415161: Notice Something happened {fields}", {})
    assert alert is not None
    assert alert.message == "Something happened"
    return dict(alert.text_fields)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            "(user=root command=make PREFIX=/usr a==b --opt=x pid=3)",
            {"user": "root", "command": "make PREFIX=/usr a==b --opt=x", "pid": "3"},
            id="uppercase-double-equals-and-dashed-options-do-not-split",
        ),
        pytest.param(
            "(command=sh -c (id=1 || true) terminal=0)",
            {"command": "sh -c (id=1 || true)", "terminal": "0"},
            id="key-after-parenthesis-does-not-split",
        ),
        pytest.param(
            "(file=/x custom=a b  c)",
            {"file": "/x", "custom": "a b  c"},
            id="value-runs-to-next-key-not-next-space",
        ),
        pytest.param(
            "(proc.aname[2]=bash evt.arg.flags=O_RDONLY aname[4]=init)",
            {"proc.aname[2]": "bash", "evt.arg.flags": "O_RDONLY", "aname[4]": "init"},
            id="dotted-and-indexed-keys",
        ),
        pytest.param(
            "(cmdline=echo ( start terminal=0)",
            {"cmdline": "echo ( start", "terminal": "0"},
            id="unbalanced-open-parenthesis-in-value",
        ),
        pytest.param(
            "(cmdline=echo :) done terminal=0)",
            {"cmdline": "echo :) done", "terminal": "0"},
            id="lone-close-parenthesis-in-value",
        ),
        pytest.param(
            "(k8s.ns=<NA> connection= user=root) k8s.ns=prod",
            {"user": "root", "k8s.ns": "prod"},
            id="absent-values-leave-room-for-later-occurrences",
        ),
        pytest.param(
            "(user=root) user=admin",
            {"user": "root"},
            id="first-occurrence-wins",
        ),
        pytest.param(
            "user=root command=ls -l",
            {"user": "root", "command": "ls -l"},
            id="custom-output-without-list-markers",
        ),
        pytest.param(
            "(command=dd if=/dev/zero of=/tmp/x bs=1M count=1 terminal=0)",
            {"command": "dd if=/dev/zero of=/tmp/x bs=1M count=1", "terminal": "0"},
            id="lowercase-arguments-stay-in-a-command",
        ),
        pytest.param(
            "(command=ls hash=1 terminal=0)",
            {"command": "ls hash=1", "terminal": "0"},
            id="unknown-short-label-after-a-command-stays-in-it",
        ),
        pytest.param(
            "(command=git -c color.ui=never log file=/x)",
            {"command": "git -c color.ui=never log", "file": "/x"},
            id="dotted-name-outside-falco-field-classes-does-not-split-a-command",
        ),
    ],
)
def test_read_alert_text_key_rule(fields: str, expected: dict[str, str]) -> None:
    """Only lowercase Falco keys starting a word split the field list."""
    read = _fields_of(fields)

    assert read == expected


def test_read_alert_text_message_keeps_its_own_parentheses() -> None:
    """Parentheses without `key=` stay in the message."""
    body = "01:02:03.040506070: Warning Namespace change (setns) by non-http(s) program (user=root)"

    alert = read_alert(body, {})

    assert alert is not None
    assert alert.message == "Namespace change (setns) by non-http(s) program"
    assert alert.text_fields == {"user": "root"}


def test_read_alert_text_without_fields() -> None:
    """A text alert without a field list is an alert with no text fields."""
    body = "01:02:03.040506070: Info Interactive root (root bash)"

    alert = read_alert(body, {})

    assert alert is not None
    assert (alert.message, alert.priority, alert.text_fields) == (
        "Interactive root (root bash)",
        "Info",
        {},
    )


# --- not alerts and malformed alerts -----------------------------------------


@pytest.mark.parametrize("line", _lines("not-alerts.log"))
def test_read_alert_returns_none_for_other_logs(line: str) -> None:
    """Falco's own log lines and other programs' logs are not alerts."""
    alert = read_alert(line, {})

    assert alert is None


@pytest.mark.parametrize("body", [None, "", "   ", 42, 4.2, True, [1, 2], {"a": 1}, b"\xff\xfe"])
def test_read_alert_returns_none_for_empty_and_foreign_bodies(body: object) -> None:
    """Empty, scalar, list, foreign map and undecodable bodies are not alerts."""
    alert = read_alert(body, {"log.iostream": "stdout"})

    assert alert is None


@pytest.mark.parametrize("line", _lines("malformed.log"))
def test_read_alert_raises_for_malformed_json(line: str) -> None:
    """A JSON string naming itself a Falco alert but unreadable is malformed."""
    with pytest.raises(MalformedAlertError):
        read_alert(line, {})


@pytest.mark.parametrize(
    ("body", "attributes"),
    [
        pytest.param({"output": 7, "rule": "r", "priority": "Notice"}, {}, id="map-output"),
        pytest.param(
            {"output": "x", "rule": "r", "output_fields": "proc.name=sh"}, {}, id="map-fields"
        ),
        pytest.param(
            None, {"output": ["x"], "rule": "r", "priority": "Notice"}, id="attributes-output"
        ),
        pytest.param(
            "x", {"rule": "r", "priority": "Notice", "hostname": {"a": 1}}, id="attributes-host"
        ),
        pytest.param(
            {"output": "x", "rule": "r", "output_fields": {"n": 10**5000}}, {}, id="huge-number"
        ),
    ],
)
def test_read_alert_raises_for_malformed_mappings(
    body: object, attributes: dict[str, object]
) -> None:
    """Alert keys with unreadable values are malformed, in bodies and attributes."""
    with pytest.raises(MalformedAlertError):
        read_alert(body, attributes)


def test_read_alert_raises_for_json_with_too_long_number() -> None:
    """A JSON alert whose number Python refuses to read is malformed."""
    body = '{"output":"x","rule":"r","priority":"Notice","output_fields":{"n":%s}}' % ("9" * 5000)

    with pytest.raises(MalformedAlertError):
        read_alert(body, {})


# --- robustness ----------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=20)
    | st.sampled_from(["Notice", "Critical", "<NA>", "", "Falco internal: x"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_HEADERS = st.sampled_from(
    ["10:11:12.131415161: Notice ", "2024-01-02T03:04:05.060708090+0000: Info ", ""]
)
_TOKENS = [*'ab=()|, .[]<>NA"{}:-_', "user", "command", " k8s.ns", " (id=host)", " | "]
_TAILS = st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join)
_FALCO_LIKE = st.builds(lambda head, tail: head + tail, _HEADERS, _TAILS)
# Mappings that often carry Falco's alert keys, with any value in them.
_ALERT_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "output": _FALCO_LIKE | _VALUES,
        "rule": st.text(max_size=20) | _VALUES,
        "priority": st.sampled_from(["Notice", "info", "", "Urgent"]) | _VALUES,
        "source": _VALUES,
        "tags": st.text(max_size=20) | _VALUES,
        "hostname": _VALUES,
        "time": _VALUES,
        "timestamp": _VALUES,
        "output_fields": st.dictionaries(st.text(max_size=12), _VALUES) | _VALUES,
        "output_fields.proc.name": _VALUES,
        "proc.name": _VALUES,
    },
)
# Mappings shaped like real alerts, so that reading goes all the way.
_WELL_FORMED = st.fixed_dictionaries(
    {"output": _FALCO_LIKE, "rule": st.text(max_size=20), "priority": st.sampled_from(["Notice"])},
    optional={
        "source": st.text(max_size=10),
        "tags": st.lists(st.text(max_size=10), max_size=3),
        "output_fields": st.dictionaries(st.text(max_size=12), _SCALARS, max_size=6),
    },
)
_MAPPINGS = _WELL_FORMED | _ALERT_LIKE | st.dictionaries(st.text(max_size=12), _VALUES, max_size=6)
_JSON_LIKE = st.tuples(_WELL_FORMED | _ALERT_LIKE, st.integers(1, 400)).map(
    lambda pair: json.dumps(pair[0], default=repr)[: pair[1]]
) | _WELL_FORMED.map(lambda alert: json.dumps(alert, default=repr))
_BODIES = (
    st.text(max_size=200) | st.binary(max_size=80) | _FALCO_LIKE | _JSON_LIKE | _MAPPINGS | _VALUES
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_BODIES, attributes=_MAPPINGS)
def test_read_alert_raises_only_malformed_alert_error(
    body: object, attributes: dict[str, object]
) -> None:
    """Any body and attributes give an alert, None or MalformedAlertError, nothing else."""
    try:
        alert = read_alert(body, attributes)
    except MalformedAlertError:
        return

    if alert is not None:
        assert alert.shape in {"json", "text", "map", "attributes"}
        for value in (*alert.output_fields.values(), *alert.text_fields.values()):
            assert value not in {"", "<NA>"}
