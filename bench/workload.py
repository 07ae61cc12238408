"""The requests the load generator sends: realistic Falco JSON alerts, packed in OTLP requests.

Every record is a Falco 0.39-style JSON alert of about 1 KB, as the collector's
filelog receiver reads it from the Falco pod's log: the JSON line is the string
body, the file path and stream are attributes, and the resource names the pod
and carries Splunk's routing attributes. A mix gives the share of records that
are shell-spawn alerts (the seed detection's match); the others are alerts of
other Falco rules.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

# Different requests the generator cycles through, so that no two in a row
# are the same bytes.
DISTINCT_REQUESTS = 8
SEED = 20250301

_BASE_NS = 1_740_823_200_000_000_000
_RESOURCE = {
    "k8s.namespace.name": "falco",
    "k8s.pod.name": "falco-x7k2p",
    "k8s.pod.uid": "6f1c2a4e-8b9d-4c3e-a1f0-2b7d9e5c4a18",
    "k8s.container.name": "falco",
    "k8s.node.name": "node-1",
    "host.name": "node-1",
    "com.splunk.sourcetype": "kube:container:falco",
    "com.splunk.source": "/var/log/pods/falco_falco-x7k2p_6f1c2a4e/falco/0.log",
    "com.splunk.index": "main",
}
_LOG_PATH = "/var/log/pods/falco_falco-x7k2p_6f1c2a4e/falco/0.log"
_NAMESPACES = ("shop", "payments", "search", "checkout", "default")
# Output labels of Falco's stock rules for the fields they show.
_LABELS = {
    "evt.type": "evt_type",
    "user.name": "user",
    "user.uid": "user_uid",
    "user.loginuid": "user_loginuid",
    "proc.name": "process",
    "proc.exepath": "proc_exepath",
    "proc.pname": "parent",
    "proc.aname[2]": "gparent",
    "proc.cmdline": "command",
    "proc.tty": "terminal",
    "proc.sid": "sid",
    "evt.arg.flags": "exe_flags",
    "fd.name": "file",
    "fd.lport": "lport",
    "container.id": "container_id",
    "container.image.repository": "container_image",
    "container.image.tag": "container_image_tag",
    "container.name": "container_name",
    "k8s.ns.name": "k8s_ns",
    "k8s.pod.name": "k8s_pod_name",
}
_IMAGES = (
    ("docker.io/library/nginx", "1.27"),
    ("ghcr.io/acme/api", "v3.14.2"),
    ("registry.k8s.io/pause", "3.9"),
    ("quay.io/prometheus/node-exporter", "v1.8.2"),
)


@dataclass(frozen=True)
class Mix:
    """A share of shell-spawn alerts among the records."""

    name: str
    shell_share: float


MIXES = {"1pct": Mix("1pct", 0.01), "100pct": Mix("100pct", 1.0)}
# Not in the default run: requests with no candidate at all (the fast path).
EXTRA_MIXES = {"0pct": Mix("0pct", 0.0)}
ALL_MIXES = {**MIXES, **EXTRA_MIXES}


def build_requests(
    mix: Mix, records_per_request: int, count: int = DISTINCT_REQUESTS, seed: int = SEED
) -> list[bytes]:
    """Serialized ExportLogsServiceRequests, the same for the same arguments."""
    rng = random.Random(f"{seed}-{mix.name}-{records_per_request}")
    return [
        _request(rng, mix, records_per_request, index * records_per_request)
        for index in range(count)
    ]


def shell_records(mix: Mix, records_per_request: int) -> int:
    """How many records of each request are shell-spawn alerts."""
    return round(records_per_request * mix.shell_share)


def _request(rng: random.Random, mix: Mix, size: int, first: int) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in _RESOURCE.items():
        resource_logs.resource.attributes.add(key=key).value.string_value = value
    scope_logs = resource_logs.scope_logs.add()

    shells = set(rng.sample(range(size), shell_records(mix, size)))
    for index in range(size):
        number = first + index
        record = scope_logs.log_records.add(
            time_unix_nano=_BASE_NS + number * 1_000_000,
            observed_time_unix_nano=_BASE_NS + number * 1_000_000 + 250_000,
        )
        maker = _shell_alert if index in shells else rng.choice(_OTHER_ALERTS)
        record.body.string_value = maker(rng, number)
        record.attributes.add(key="log.file.path").value.string_value = _LOG_PATH
        record.attributes.add(key="log.iostream").value.string_value = "stdout"
    return request.SerializeToString()


def _context(rng: random.Random, number: int) -> dict[str, object]:
    """Fields every syscall alert carries: time, container and pod."""
    image, tag = rng.choice(_IMAGES)
    namespace = rng.choice(_NAMESPACES)
    return {
        "time": f"2025-03-01T10:{number // 60000 % 60:02d}:{number // 1000 % 60:02d}."
        f"{number % 1000:03d}{rng.randrange(10**6):06d}Z",
        "container.id": f"{rng.randrange(16**12):012x}",
        "container.image.repository": image,
        "container.image.tag": tag,
        "container.name": f"{namespace}-{rng.choice(('web', 'api', 'worker'))}",
        "k8s.ns.name": namespace,
        "k8s.pod.name": f"{namespace}-{rng.randrange(16**5):05x}-{rng.randrange(16**5):05x}",
        "evt.time": _BASE_NS + number * 1_000_000,
    }


def _alert(
    rule: str, priority: str, message: str, fields: dict[str, object], tags: list[str]
) -> str:
    """Falco's JSON alert: the output text ends with the fields after a pipe, as in 0.39."""
    shown = " ".join(f"{_LABELS[key]}={value}" for key, value in fields.items() if key in _LABELS)
    time = str(fields["time"]).replace("Z", "+0000")
    alert = {
        "hostname": "node-1",
        "output": f"{time}: {priority} {message} | {shown}",
        "output_fields": {key: value for key, value in fields.items() if key != "time"},
        "priority": priority,
        "rule": rule,
        "source": "syscall",
        "tags": tags,
        "time": fields["time"],
    }
    return json.dumps(alert, separators=(",", ":"))


def _shell_alert(rng: random.Random, number: int) -> str:
    shell = rng.choice(("bash", "sh", "zsh"))
    fields = {
        "evt.type": "execve",
        "user.name": rng.choice(("root", "app", "nobody")),
        "user.uid": 0,
        "user.loginuid": -1,
        "proc.name": shell,
        "proc.exepath": f"/bin/{shell}",
        "proc.pname": rng.choice(("runc", "containerd-shim", "sshd")),
        "proc.cmdline": f"{shell} -il",
        "proc.tty": 34816,
        "evt.arg.flags": "EXE_WRITABLE|EXE_LOWER_LAYER",
        **_context(rng, number),
    }
    return _alert(
        "Terminal shell in container",
        "Notice",
        "A shell was spawned in a container with an attached terminal",
        fields,
        ["T1059", "container", "maturity_stable", "mitre_execution", "shell"],
    )


def _sensitive_file(rng: random.Random, number: int) -> str:
    fields = {
        "fd.name": rng.choice(("/etc/shadow", "/etc/sudoers", "/etc/pam.conf")),
        "evt.type": "openat",
        "user.name": "root",
        "user.uid": 0,
        "proc.name": "cat",
        "proc.exepath": "/usr/bin/cat",
        "proc.pname": "bash",
        "proc.cmdline": "cat /etc/shadow",
        "proc.aname[2]": "containerd-shim",
        "evt.arg.flags": "O_RDONLY",
        **_context(rng, number),
    }
    return _alert(
        "Read sensitive file untrusted",
        "Warning",
        "Sensitive file opened for reading by non-trusted program",
        fields,
        ["T1555", "container", "filesystem", "host", "maturity_stable", "mitre_credential_access"],
    )


def _api_server(rng: random.Random, number: int) -> str:
    client = f"10.0.{rng.randrange(256)}.{rng.randrange(256)}:{rng.randrange(30000, 60000)}"
    fields = {
        "fd.name": f"{client}->10.96.0.1:443",
        "fd.lport": 443,
        "evt.type": "connect",
        "user.name": "app",
        "user.uid": 1000,
        "proc.name": "curl",
        "proc.exepath": "/usr/bin/curl",
        "proc.pname": "python3",
        "proc.cmdline": "curl -sk https://kubernetes.default.svc/api/v1/namespaces",
        **_context(rng, number),
    }
    return _alert(
        "Contact K8S API Server From Container",
        "Notice",
        "Unexpected connection to K8s API Server from container",
        fields,
        ["T1565", "container", "k8s", "maturity_stable", "mitre_discovery", "network"],
    )


def _drop_and_execute(rng: random.Random, number: int) -> str:
    fields = {
        "evt.type": "execve",
        "user.name": "root",
        "user.uid": 0,
        "proc.name": "payload",
        "proc.exepath": f"/tmp/.cache/payload-{rng.randrange(10**6)}",
        "proc.pname": "sh",
        "proc.cmdline": "payload --daemon",
        "evt.arg.flags": "EXE_WRITABLE|EXE_UPPER_LAYER",
        "proc.sid": rng.randrange(1, 40000),
        **_context(rng, number),
    }
    return _alert(
        "Drop and execute new binary in container",
        "Critical",
        "Executing binary not part of base image",
        fields,
        ["T1610", "PCI_DSS_11.5.1", "container", "maturity_stable", "mitre_persistence"],
    )


_OTHER_ALERTS: tuple[Callable[[random.Random, int], str], ...] = (
    _sensitive_file,
    _api_server,
    _drop_and_execute,
)
