"""Every setting in one table: (name, environment variable, default, help).

Resolution order: command-line option, then environment variable, then default. The CLI renders
the help text from here, and the README's settings section lists the same table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    default: str
    help: str


SETTINGS = (
    Setting(
        "data",
        "WEANALYSIS_DATA",
        "./weanalysis-data",
        "Folder holding all of weanalysis' data (apps, records, indexes).",
    ),
)
BY_NAME = {s.name: s for s in SETTINGS}


def resolve(name: str, cli_value: str | None = None) -> str:
    s = BY_NAME[name]
    if cli_value:
        return cli_value
    return os.environ.get(s.env) or s.default


def data_dir(cli_value: str | None = None) -> Path:
    return Path(resolve("data", cli_value))
