"""The docs hold to the code: the command reference is what click generates, every command
and option is in it, and no doc promises a command that does not exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
from mlgitfs_cli import docgen
from mlgitfs_cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
COMMANDS_MD = ROOT / "docs" / "commands.md"


def test_committed_reference_is_the_generated_one() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlgitfs_cli.docgen", "--check", "--file", str(COMMANDS_MD)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_reference_covers_every_command_and_option() -> None:
    doc = COMMANDS_MD.read_text()

    def walk(cmd: click.Command, path: str) -> None:
        assert f"#### `{path} " in doc, f"{path} is not in docs/commands.md"
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and p.name not in docgen.GLOBAL:
                assert any(o in doc for o in p.opts), f"{path} {p.opts} is not documented"
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")

    for name, cmd in cli.commands.items():
        walk(cmd, f"mlgitfs {name}")
    json_commands = [
        n for n, c in cli.commands.items() if any(p.name == "as_json" for p in c.params)
    ]
    assert len(json_commands) >= 15
    for name in json_commands:
        section = doc.split(f"#### `mlgitfs {name} ", 1)[1].split("####", 1)[0]
        assert "`--json`" in section, f"--json of {name} is not documented"


def test_a_stale_reference_is_caught(tmp_path: Path) -> None:
    stale = tmp_path / "commands.md"
    stale.write_text(COMMANDS_MD.read_text().replace("Machine-readable output.", "Old text.", 1))
    assert docgen.main(["--check", "--file", str(stale)]) == 1
    assert docgen.main(["--file", str(stale)]) == 0
    assert stale.read_text() == COMMANDS_MD.read_text()


def test_no_doc_promises_a_missing_command() -> None:
    commands = set(cli.commands)
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        text = doc.read_text()
        if "gc" not in commands:  # every mention says there is none yet
            for m in re.finditer(r"[^|.\n(]*\bgc\b[^|.\n]*", text):
                assert "no gc" in m.group(0), (doc.name, m.group(0))
