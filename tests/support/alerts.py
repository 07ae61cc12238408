"""Falco alerts as Falco prints them, in OTLP log requests shaped as the Splunk chart ships them."""

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from support.otlp import Captured, Value, key_values, to_any_value

SHELL_RULE = "Terminal shell in container"
SHELL_MESSAGE = "A shell was spawned in a container with an attached terminal"
# The phrase Splunk's "Kubernetes Falco Shell Spawned" search matches.
SHELL_PHRASE = "A shell was spawned in a container"
FALCO_SOURCETYPE = "kube:container:falco"
FIXED_TIME = datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The attributes the container operator of the filelog receiver adds to each line.
CONTAINER_LINE_ATTRIBUTES: dict[str, Value] = {"log.iostream": "stdout", "logtag": "F"}

FieldValue: TypeAlias = str | int | None
# (label in the output text, Falco field name), in output order.
Labels: TypeAlias = tuple[tuple[str, str], ...]

PROCESS_LABELS: Labels = (
    ("evt_type", "evt.type"),
    ("user", "user.name"),
    ("user_uid", "user.uid"),
    ("user_loginuid", "user.loginuid"),
    ("process", "proc.name"),
    ("proc_exepath", "proc.exepath"),
    ("parent", "proc.pname"),
    ("command", "proc.cmdline"),
    ("terminal", "proc.tty"),
)
CONTAINER_LABELS: Labels = (
    ("container_id", "container.id"),
    ("container_name", "container.name"),
    ("container_image_repository", "container.image.repository"),
    ("container_image_tag", "container.image.tag"),
    ("k8s_pod_name", "k8s.pod.name"),
    ("k8s_ns_name", "k8s.ns.name"),
)


def new_uid() -> str:
    """A unique 12-hex-digit id, used as an alert's container id."""
    return uuid.uuid4().hex[:12]


def unix_nanos(moment: datetime) -> int:
    """Nanoseconds since the Unix epoch, exactly."""
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000


@dataclass(frozen=True)
class Alert:
    """One Falco alert; its uid is the container id and ends the container name."""

    uid: str
    rule: str
    priority: str
    message: str
    labels: Labels
    fields: Mapping[str, FieldValue]
    tags: tuple[str, ...]
    hostname: str = "node-1"
    source: str = "syscall"
    time: datetime = FIXED_TIME

    def text(self) -> str:
        """The alert as Falco prints it without json_output."""
        pairs = " ".join(f"{label}={_show(self.fields[name])}" for label, name in self.labels)
        clock = self.time.strftime("%H:%M:%S.%f") + "000"
        return f"{clock}: {self.priority} {self.message} | {pairs}"

    def json(self) -> str:
        """The alert as Falco prints it with json_output, keys sorted and compact."""
        document = {
            "hostname": self.hostname,
            "output": self.text(),
            "output_fields": {"evt.time": unix_nanos(self.time), **self.fields},
            "priority": self.priority,
            "rule": self.rule,
            "source": self.source,
            "tags": list(self.tags),
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z",
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"))

    def cri_line(self, text: bool = False) -> str:
        """The line the kubelet writes to the Falco pod's log file (CRI format)."""
        stamp = self.time.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        return f"{stamp} stdout F {self.text() if text else self.json()}"


def _show(value: FieldValue) -> str:
    return "<NA>" if value is None else str(value)


def _container(uid: str, pod: str, namespace: str, image: str, tag: str) -> dict[str, FieldValue]:
    return {
        "container.id": uid,
        "container.name": f"app-{uid}",
        "container.image.repository": image,
        "container.image.tag": tag,
        "k8s.pod.name": pod,
        "k8s.ns.name": namespace,
    }


def shell_alert(
    uid: str | None = None,
    *,
    shell: str = "bash",
    pod: str = "web-7d4b9c6f5-x2x9q",
    namespace: str = "shop",
    time: datetime = FIXED_TIME,
) -> Alert:
    """A "Terminal shell in container" alert (kubectl exec -it ... bash)."""
    uid = uid or new_uid()
    fields: dict[str, FieldValue] = {
        "evt.type": "execve",
        "user.name": "root",
        "user.uid": 0,
        "user.loginuid": -1,
        "proc.name": shell,
        "proc.exepath": f"/usr/bin/{shell}",
        "proc.pname": "runc",
        "proc.cmdline": shell,
        "proc.tty": 34816,
        "evt.arg.flags": "EXE_WRITABLE|EXE_LOWER_LAYER",
        **_container(uid, pod, namespace, "docker.io/library/nginx", "1.27"),
    }
    labels = (*PROCESS_LABELS, ("exe_flags", "evt.arg.flags"), *CONTAINER_LABELS)
    tags = ("maturity_stable", "container", "shell", "mitre_execution", "T1059")
    return Alert(uid, SHELL_RULE, "Notice", SHELL_MESSAGE, labels, fields, tags, time=time)


def sensitive_file_alert(
    uid: str | None = None, *, path: str = "/etc/shadow", time: datetime = FIXED_TIME
) -> Alert:
    """A "Read sensitive file untrusted" alert: not a shell spawn."""
    uid = uid or new_uid()
    fields: dict[str, FieldValue] = {
        "fd.name": path,
        "proc.aname[2]": "containerd-shim",
        "evt.type": "openat",
        "user.name": "root",
        "user.uid": 0,
        "user.loginuid": -1,
        "proc.name": "cat",
        "proc.exepath": "/usr/bin/cat",
        "proc.pname": "sh",
        "proc.cmdline": f"cat {path}",
        "proc.tty": 0,
        **_container(uid, "api-5f6d8b7c9-qq7lm", "shop", "docker.io/library/python", "3.12"),
    }
    labels = (("file", "fd.name"), ("gparent", "proc.aname[2]"), *PROCESS_LABELS, *CONTAINER_LABELS)
    tags = ("maturity_stable", "host", "container", "filesystem", "mitre_credential_access")
    message = "Sensitive file opened for reading by non-trusted program"
    rule = "Read sensitive file untrusted"
    return Alert(uid, rule, "Warning", message, labels, fields, tags, time=time)


def k8s_api_alert(uid: str | None = None, *, time: datetime = FIXED_TIME) -> Alert:
    """A "Contact K8S API Server From Container" alert: not a shell spawn."""
    uid = uid or new_uid()
    fields: dict[str, FieldValue] = {
        "fd.name": "10.244.0.12:41514->10.96.0.1:443",
        "evt.type": "connect",
        "user.name": "nobody",
        "user.uid": 65534,
        "user.loginuid": -1,
        "proc.name": "curl",
        "proc.exepath": "/usr/bin/curl",
        "proc.pname": "sh",
        "proc.cmdline": "curl -sk https://kubernetes.default/api",
        "proc.tty": 0,
        **_container(uid, "batch-6c9f7d8b4-m4kzt", "jobs", "docker.io/curlimages/curl", "8.9.1"),
    }
    labels = (("connection", "fd.name"), *PROCESS_LABELS, *CONTAINER_LABELS)
    tags = ("maturity_stable", "container", "network", "k8s", "mitre_discovery")
    message = "Unexpected connection to K8s API Server from container"
    rule = "Contact K8S API Server From Container"
    return Alert(uid, rule, "Notice", message, labels, fields, tags, time=time)


def falco_resource(
    *,
    node: str = "node-1",
    pod: str = "falco-x7k2p",
    pod_uid: str = "5b0d3c1e-6f4a-4e8b-9c2d-7a1f0e3b4c5d",
    index: str = "falco",
) -> dict[str, Value]:
    """Resource attributes the Splunk chart's agent puts on the Falco pod's log records."""
    return {
        "com.splunk.sourcetype": FALCO_SOURCETYPE,
        "com.splunk.source": f"/var/log/pods/falco_{pod}_{pod_uid}/falco/0.log",
        "com.splunk.index": index,
        "host.name": node,
        "os.type": "linux",
        "k8s.cluster.name": "test-cluster",
        "k8s.node.name": node,
        "k8s.namespace.name": "falco",
        "k8s.pod.name": pod,
        "k8s.pod.uid": pod_uid,
        "k8s.container.name": "falco",
        "k8s.container.restart_count": "0",
        "container.image.name": "docker.io/falcosecurity/falco",
        "container.image.tag": "0.41.3",
    }


def log_record(
    body: str,
    *,
    time: datetime = FIXED_TIME,
    attributes: Mapping[str, Value] | None = None,
) -> LogRecord:
    """A log record as the filelog receiver makes it from one container log line."""
    attributes = CONTAINER_LINE_ATTRIBUTES if attributes is None else attributes
    return LogRecord(
        time_unix_nano=unix_nanos(time),
        observed_time_unix_nano=unix_nanos(time) + 1_000_000,
        body=to_any_value(body),
        attributes=key_values(attributes),
    )


def logs_request(
    records: Iterable[LogRecord], resource: Mapping[str, Value] | None = None
) -> ExportLogsServiceRequest:
    """One request, one resource (the Falco pod's by default), one empty scope."""
    resource = falco_resource() if resource is None else resource
    scope_logs = ScopeLogs(scope=InstrumentationScope(), log_records=list(records))
    resource_logs = ResourceLogs(
        resource=Resource(attributes=key_values(resource)), scope_logs=[scope_logs]
    )
    return ExportLogsServiceRequest(resource_logs=[resource_logs])


def alerts_request(
    alerts: Iterable[Alert], *, text: bool = False, resource: Mapping[str, Value] | None = None
) -> ExportLogsServiceRequest:
    """A request carrying `alerts` as JSON (or text) bodies, as the chart ships them."""
    records = (
        log_record(alert.text() if text else alert.json(), time=alert.time) for alert in alerts
    )
    return logs_request(records, resource)


def with_uid(records: Iterable[Captured], uid: str) -> list[Captured]:
    """The records whose string body mentions `uid`."""
    return [r for r in records if isinstance(r.body, str) and uid in r.body]
