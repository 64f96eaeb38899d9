"""JSON given on the command line: `--input` / `--input-file`, `--data`, `--decision`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from smithers.errors import UsageError


def json_arg(flag: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} is not valid JSON: {exc.msg} at position {exc.pos}") from None


def read_input(args: argparse.Namespace) -> Any:
    """The run input of `--input JSON` or `--input-file F`; `{}` without either."""
    text = args.input
    if args.input_file:
        try:
            text = Path(args.input_file).read_text()
        except OSError as exc:
            raise UsageError(
                f"cannot read --input-file {args.input_file}: {exc.strerror}"
            ) from None
    if text is None:
        return {}
    return json_arg("--input", text)
