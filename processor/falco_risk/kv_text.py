"""Split a Falco output text into its message and its key=value fields.

A key is a lowercase Falco field name or output label (`user`, `k8s.ns`,
`evt.arg.flags`, `proc.aname[2]`, `aname[4]`) that starts a word and is
followed by a single `=`.  So `--log-opt=x`, `(id=abc)`, `FOO=bar` and
`a==b` never start a field, and a value runs up to the next key, spaces,
parentheses and pipes included.

Command lines are free text: inside the value of a command-like key
(`command`, `cmdline`, `proc.args`, ...) only a label Falco's rules use, a
label with an underscore or a field of a Falco field class ends the value,
so `dd if=/dev/zero of=/tmp/x` stays whole.  The price: a short custom label
right after a command (`command=ls hash=1`) is read as part of the command,
and a command holding ` user.name=x` (`git -c user.name=x`) is cut there.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_KEY = r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*(?:\[[^\]\s]*\])?"
_KEY_RE = re.compile(rf"(?<!\S)({_KEY})=(?!=)")

# The field list opens with ` (` (Falco up to 0.40) or ` | ` (0.41 and
# later).  An old `%container.info` expansion `name (id=abc)` in the message
# is not an opening.
_OPENER_RE = re.compile(rf"(?:^| )(\(|\| )(?!id=(?:[0-9a-f]{{12,64}}|host)\))(?={_KEY}=(?!=))")
# Without an opening, the fields start at the first key (custom outputs).
_BARE_RE = re.compile(rf"(?:^| )(?={_KEY}=(?!=))")

# Falco up to 0.2x expanded `%container.info` to `<name> (id=<id>)`, glued
# to the end of whatever value came before it.
_CONTAINER_INFO_RE = re.compile(r"(?:^|\s)(\S+) \(id=([0-9a-f]{12,64}|host)\)$")

_ABSENT = frozenset({"", "<NA>"})

_FREE_FORM = frozenset(
    {"command", "cmdline", "pcmdline", "proc_pcmdline", "args", "env", "module", "socket_info"}
)
_FREE_FORM_SUFFIXES = ("cmdline", "args", "exeline")

# First parts of the Falco field names (syscall, k8s audit and plugin
# sources) that may appear as keys.
_FIELD_CLASSES = frozenset(
    {
        "proc", "thread", "evt", "fd", "fdlist", "user", "group", "container",
        "k8s", "k8smeta", "ka", "jevt", "json", "syslog", "span", "fs", "ct",
        "gcp", "okta", "github", "static", "falco",
    }
)  # fmt: skip

# Labels used by Falco's stock rules, `-pk`/`-pc` and `append_output`
# suffixes across generations.
_LABELS = frozenset(
    {
        "action", "aname", "args", "binding", "buffer", "cmdline", "command",
        "config", "configmap", "connection", "container", "cwd", "decision",
        "deployment", "directory", "env", "error", "event", "evt", "exe", "fd",
        "file", "filename", "fileraw", "gexepath", "gparent", "ggparent",
        "gggparent", "ggggparent", "image", "images", "ingress", "ip",
        "linkpath", "lport", "mode", "module", "mounts", "name", "namespace",
        "newpath", "node", "ns", "obj", "oldpath", "operation", "parent",
        "path", "pcmdline", "pid", "pod", "port", "ports", "ppid", "process",
        "program", "proto", "reason", "res", "resp", "role", "rport", "rules",
        "secret", "service", "serviceaccount", "shell", "subject", "subjects",
        "target", "terminal", "tid", "tty", "type", "uid", "uri", "user",
        "username", "useruid", "verb", "volumes",
    }
)  # fmt: skip

_INFO_NAME = "container.name"
_INFO_ID = "container.id"


class OutputText(NamedTuple):
    """The message and fields of one output text."""

    message: str
    fields: dict[str, str]
    # Keys taken from a glued `%container.info` expansion, not from `key=`.
    from_container_info: tuple[str, ...]


class OutputSplit(NamedTuple):
    """An output text cut where its field list starts; the fields are not read yet."""

    message: str
    region: str
    parenthesised: bool

    def read(self) -> OutputText:
        """Read the fields (the costly part: a pass over every key) into an OutputText."""
        values = _values(self.region, _key_spans(self.region), self.parenthesised)
        fields, derived = _collect(values)
        return OutputText(self.message, fields, derived)


def read_output(text: str) -> OutputText:
    """Split `text`, the output after its time and priority, into message and fields."""
    return split_output(text).read()


def split_output(text: str) -> OutputSplit:
    """Find the message of `text` (the output after its time and priority) only."""
    opener = _OPENER_RE.search(text)
    if opener is not None:
        return OutputSplit(
            text[: opener.start()].strip(), text[opener.end() :], opener.group(1) == "("
        )
    bare = _BARE_RE.search(text)
    if bare is None:
        return OutputSplit(text.strip(), "", False)
    return OutputSplit(text[: bare.start()].strip(), text[bare.end() :], False)


def _key_spans(region: str) -> list[tuple[str, int, int]]:
    """Return (key, value start, value end) for each field of `region`."""
    spans: list[tuple[str, int, int]] = []
    key = ""
    start = 0
    free_form = False
    for match in _KEY_RE.finditer(region):
        candidate = match.group(1)
        if free_form and not _ends_free_form(candidate):
            continue
        if key:
            spans.append((key, start, match.start()))
        key = candidate
        start = match.end()
        free_form = candidate in _FREE_FORM or candidate.endswith(_FREE_FORM_SUFFIXES)

    if key:
        spans.append((key, start, len(region)))
    return spans


def _ends_free_form(key: str) -> bool:
    """Tell whether `key` ends the value of a command-like key."""
    base = key.partition("[")[0]
    if "." in base:
        return base.partition(".")[0] in _FIELD_CLASSES
    return base in _LABELS or "_" in base


def _values(
    region: str, spans: list[tuple[str, int, int]], parenthesised: bool
) -> list[tuple[str, str]]:
    """Cut the values out of `region`, dropping the list's closing parenthesis."""
    values: list[tuple[str, str]] = []
    depth = 1 if parenthesised else 0
    closed = not parenthesised
    for key, start, end in spans:
        value = region[start:end].rstrip()
        if not closed:
            depth += value.count("(") - value.count(")")
            if depth <= 0 and value.endswith(")"):
                value = value[:-1]
                closed = True
            elif depth <= 0:
                # A lone `)` inside a value: the list is still open.
                depth = 1
        elif parenthesised and value.endswith(","):
            # Comma-separated suffix blocks: `pod_uid=x, pod_name=y`.
            value = value[:-1]
        values.append((key, value))

    if not closed and values and values[-1][1].endswith(")"):
        # Unbalanced `(` in some value: the last `)` closes the list.
        key, value = values[-1]
        values[-1] = (key, value[:-1])
    return values


def _collect(values: list[tuple[str, str]]) -> tuple[dict[str, str], tuple[str, ...]]:
    """Keep the first present value of each key."""
    fields: dict[str, str] = {}
    derived: tuple[str, ...] = ()
    for key, raw in values:
        value = raw.strip()
        if value.endswith(")") and "(id=" in value:
            info = _CONTAINER_INFO_RE.search(value)
            if info is not None:
                value = value[: info.start()].strip()
                derived += _add_container_info(fields, info.group(1), info.group(2))
        if value not in _ABSENT and key not in fields:
            fields[key] = value
    return fields, derived


def _add_container_info(fields: dict[str, str], name: str, container_id: str) -> tuple[str, ...]:
    """Record a `%container.info` expansion unless its keys are already known."""
    added: tuple[str, ...] = ()
    if _INFO_NAME not in fields:
        fields[_INFO_NAME] = name
        added += (_INFO_NAME,)
    if _INFO_ID not in fields:
        fields[_INFO_ID] = container_id
        added += (_INFO_ID,)
    return added
