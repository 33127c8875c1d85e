"""Outputs never land in inputs: a run's logs and checkpoints inside its records directory make the next run refuse
those records, and a tool that replaces its output directory would delete inputs inside it. Checked before any work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from src.files.staging import MANIFEST


def _protected(path: Path) -> Path:
    """What an input protects: a directory, or a file's tool-made directory (it has a manifest), or the file."""
    if path.is_file() and (path.parent / MANIFEST).is_file():
        return path.parent
    return path


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_apart(outputs: Mapping[str, str | Path], inputs: Mapping[str, str | Path], replaces: bool = False) -> None:
    """One line for the first output (flag -> path) that is an input or lies inside one; with replaces (a tool
    that swaps its whole output directory), also for an input inside an output. Empty paths are skipped."""
    resolved_inputs = {flag: _protected(Path(path).resolve()) for flag, path in inputs.items() if str(path)}
    for out_flag, out_path in outputs.items():
        if not str(out_path):
            continue
        output = Path(out_path).resolve()
        for in_flag, protected in resolved_inputs.items():
            if _inside(output, protected):
                given = Path(inputs[in_flag]).resolve()
                where = (f"{in_flag} {inputs[in_flag]}" if protected == given else
                         f"{protected}, the tool-made directory of {in_flag} {inputs[in_flag]}")
                raise ValueError(f"{out_flag} {out_path} is inside {where}: outputs there would change the input; "
                                 f"pass an {out_flag} outside it")
            if replaces and _inside(protected, output):
                raise ValueError(f"{in_flag} {inputs[in_flag]} is inside {out_flag} {out_path}, which this tool "
                                 f"replaces as a whole: pass an {out_flag} that holds no input")
