"""Read a Dockerfile into stages of instructions, enough to replay its build steps."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword in upper case and its raw arguments."""

    keyword: str
    arguments: str


@dataclass
class Stage:
    """The instructions from one FROM up to the next."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        """Return this stage's instructions with the given keyword."""
        return [i for i in self.instructions if i.keyword == keyword]


def logical_lines(text: str) -> list[str]:
    """Join continued lines and drop comments and blank lines."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending.strip())
    return lines


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Return the global ARG defaults and the stages of the Dockerfile at path."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()

        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif not stages and keyword == "ARG":
            key, _, default = arguments.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return global_args, stages


def env_pairs(instruction: Instruction) -> dict[str, str]:
    """Return the key=value pairs that an ENV instruction sets, unexpanded."""
    pairs: dict[str, str] = {}
    for word in shlex.split(instruction.arguments):
        key, _, value = word.partition("=")
        pairs[key] = value
    return pairs
