"""Split a Falco output text into its message and its key=value fields.

A key is a lowercase Falco field name or output label (`user`, `k8s.ns`,
`evt.arg.flags`, `proc.aname[2]`, `aname[4]`) that opens the list or follows
a space, and is followed by a single `=`.  So `--log-opt=x`, `(id=abc)`,
`FOO=bar` and `a==b` never start a field, and a value runs up to the next
key, spaces, parentheses and pipes included.

Command lines are free text: inside the value of a command-like key
(`command`, `cmdline`, `proc.args`, ...) only a label Falco's rules use, a
label with an underscore or a field of a Falco field class ends the value,
so `dd if=/dev/zero of=/tmp/x` stays whole.  Syscall argument lists
(`socket_info=%evt.args`) are read the same way, except that argument names
(`type`, `proto`, `fd`, ...) do not end them either.  The price: a short
custom label right after a command (`command=ls hash=1`) is read as part of
the command, and a command holding ` user.name=x` (`git -c user.name=x`) is
cut there.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_KEY = r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*(?:\[[^\]\s]*\])?"
_KEY_RE = re.compile(rf" ({_KEY})=(?!=)")

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

# How far a value runs: to any key, to a known key (command lines), or to a
# known key that is no syscall argument name (syscall argument lists).
_ANY_KEY, _KNOWN_KEY, _NON_ARGUMENT_KEY = range(3)

_COMMAND_KEYS = frozenset(
    {"command", "cmdline", "pcmdline", "proc_pcmdline", "args", "env", "module"}
)
_COMMAND_SUFFIXES = ("cmdline", "exeline", "proc.args")
_ARGUMENT_KEYS = frozenset({"socket_info", "evt.args", "evt_args"})
_KIND_OF_KEY = {
    **dict.fromkeys(_COMMAND_KEYS, _KNOWN_KEY),
    **dict.fromkeys(_ARGUMENT_KEYS, _NON_ARGUMENT_KEY),
}

# Argument names of syscall events, as `%evt.args` writes them.
_SYSCALL_ARGUMENTS = frozenset(
    {
        "addr", "cmd", "data", "dev", "dirfd", "domain", "fd", "flags", "gid",
        "ino", "len", "linkpath", "mode", "name", "newdir", "newpath", "olddir",
        "oldpath", "path", "pid", "proto", "request", "res", "size", "target",
        "tid", "tuple", "type", "uid",
    }
)  # fmt: skip

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
        # Splitting at ` key=` leaves ["", key, value, key, value, ...].
        parts = _KEY_RE.split(" " + self.region)
        fields, derived = _read_fields(parts, self.parenthesised)
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


def _read_fields(parts: list[str], parenthesised: bool) -> tuple[dict[str, str], tuple[str, ...]]:
    """Keep the first present value of each key of the split field list."""
    fields: dict[str, str] = {}
    derived: tuple[str, ...] = ()
    depth = 1 if parenthesised else 0
    count = len(parts)
    index = 1
    while index < count:
        key = parts[index]
        value = parts[index + 1]
        index += 2
        runs_to = _value_kind(key)
        while runs_to and index < count and not _ends_value(parts[index], runs_to):
            # Not a key in this value: put its `key=` text back.
            value = f"{value} {parts[index]}={parts[index + 1]}"
            index += 2

        value = value.strip()
        if depth > 0 and ("(" in value or ")" in value or index >= count):
            value, depth = _close_list(value, depth, last=index >= count)
        elif depth == 0 and parenthesised and value.endswith(","):
            # Comma-separated suffix blocks: `pod_uid=x, pod_name=y`.
            value = value[:-1].rstrip()

        if value.endswith(")") and "(id=" in value:
            value, added = _split_container_info(value, fields)
            derived += added
        if value not in _ABSENT and key not in fields:
            fields[key] = value
    return fields, derived


def _close_list(value: str, depth: int, last: bool) -> tuple[str, int]:
    """Drop the `)` that closes the field list from `value`; 0 once closed."""
    depth += value.count("(") - value.count(")")
    if depth <= 0 and value.endswith(")"):
        return value[:-1].rstrip(), 0
    if depth <= 0:
        # A lone `)` inside a value: the list is still open.
        depth = 1
    if last and value.endswith(")"):
        # Unbalanced `(` in some value: the last `)` closes the list.
        return value[:-1].rstrip(), 0
    return value, depth


def _value_kind(key: str) -> int:
    """Tell how far the value of `key` runs."""
    kind = _KIND_OF_KEY.get(key)
    if kind is None:
        return _KNOWN_KEY if key.endswith(_COMMAND_SUFFIXES) else _ANY_KEY
    return kind


def _ends_value(key: str, runs_to: int) -> bool:
    """Tell whether `key` ends a command line or a syscall argument list."""
    base = key.partition("[")[0]
    if "." in base:
        return base.partition(".")[0] in _FIELD_CLASSES
    if runs_to == _NON_ARGUMENT_KEY and base in _SYSCALL_ARGUMENTS:
        return False
    return base in _LABELS or "_" in base


def _split_container_info(value: str, fields: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """Cut a glued `name (id=...)` off `value` and record it."""
    info = _CONTAINER_INFO_RE.search(value)
    if info is None:
        return value, ()
    added = _add_container_info(fields, info.group(1), info.group(2))
    return value[: info.start()].strip(), added


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
