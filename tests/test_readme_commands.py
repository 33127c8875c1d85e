"""Every command in README.md's and README_CN.md's shell blocks names a file that exists and flags the script accepts.

A flag of a python script is checked against its own --help (argparse's list, the script run in this process); a
flag given to a bash launcher must be one it handles itself or one of a python script it runs.
"""
from __future__ import annotations

import contextlib
import io
import re
import runpy
import shlex
import sys
from functools import cache

import pytest

from tests.helpers import ROOT

SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.S | re.M)
FLAG = re.compile(r"--[A-Za-z][\w-]*")
SEPARATORS = {"|", "&&", "||", ";"}


def readme_commands(text: str) -> list[list[str]]:
    """The commands of a markdown text's shell blocks, continuation lines joined, comments dropped, pipelines
    split."""
    commands = []
    for block in SHELL_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            command: list[str] = []
            for token in shlex.split(line, comments=True):
                if token in SEPARATORS:
                    commands.append(command)
                    command = []
                else:
                    command.append(token)
            commands.append(command)
    return [command for command in commands if command]


@cache
def python_flags(script: str) -> frozenset[str]:
    """The flags script's argparse parser lists in its --help."""
    output = io.StringIO()
    argv = sys.argv
    sys.argv = [str(ROOT / script), "--help"]
    try:
        with contextlib.redirect_stdout(output), pytest.raises(SystemExit):
            runpy.run_path(str(ROOT / script), run_name="__main__")
    finally:
        sys.argv = argv
    return frozenset(FLAG.findall(output.getvalue()))


def launcher_flags(script: str) -> frozenset[str]:
    """The flags a bash launcher names, and those of the python scripts it names (it runs them, or passes its
    extra flags to them)."""
    text = (ROOT / script).read_text(encoding="utf-8")
    flags = set(FLAG.findall(text))
    for target in set(re.findall(r"\b([\w/]+\.py)\b", text)):
        if (ROOT / target).is_file() and not target.startswith("tests/"):
            flags |= python_flags(target)
    return frozenset(flags)


def program_and_flags(command: list[str]) -> tuple[str, str, list[str]] | None:
    """(interpreter, script, flags) of a `python X.py ...` or `bash X.sh ...` command, leading VAR=value dropped."""
    while command and re.fullmatch(r"[A-Z_]+=\S*", command[0]):
        command = command[1:]
    if len(command) < 2 or command[0] not in ("python", "bash"):
        return None
    flags = [token.split("=")[0] for token in command[2:] if token.startswith("--")]
    return command[0], command[1], flags


def problems_in(text: str) -> tuple[int, list[str]]:
    """How many script commands the text's shell blocks hold, and what is wrong with them."""
    checked, problems = 0, []
    for command in readme_commands(text):
        found = program_and_flags(command)
        if found is None:
            continue
        interpreter, script, flags = found
        checked += 1
        if not (ROOT / script).is_file():
            problems.append(f"{' '.join(command)}: {script} does not exist")
            continue
        accepted = python_flags(script) if interpreter == "python" else launcher_flags(script)
        problems += [f"{' '.join(command)}: {script} does not accept {flag}" for flag in flags if flag not in accepted]
    return checked, problems


@pytest.mark.parametrize("readme", ["README.md", "README_CN.md"])
def test_readme_commands_name_existing_scripts_and_accepted_flags(readme):
    checked, problems = problems_in((ROOT / readme).read_text(encoding="utf-8"))
    assert checked >= 20, f"only {checked} commands found in {readme}: has its layout of shell blocks changed?"
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_missing_script_an_unknown_flag_and_a_launcher_flag():
    text = """```bash
python run_pretrain.py --data_dir records/ --learning_rate 1   # not a flag of run_pretrain.py
echo text | python predict.py --load_finetune_checkpoint_path ckpt/ \\
    --no_such_flag x
DEVICE_TARGET=CPU bash scripts/run_standalone_pretrain_cpu.sh 1 records/ --train_steps=10
bash scripts/no_such_launcher.sh 1
```
"""
    checked, problems = problems_in(text)
    assert checked == 4
    assert problems == [
        "python run_pretrain.py --data_dir records/ --learning_rate 1: run_pretrain.py does not accept --learning_rate",
        "python predict.py --load_finetune_checkpoint_path ckpt/ --no_such_flag x: predict.py does not accept "
        "--no_such_flag",
        "bash scripts/no_such_launcher.sh 1: scripts/no_such_launcher.sh does not exist"]
