"""Find and load the profile.json files a report or gate reads: RUNS_DIRs, profile folders, files.

``edgeship profile -o RUNS_DIR`` writes ``RUNS_DIR/<serial>/<sha12>/profile.json``; a user may also name one
such folder, or to a profile.json copied anywhere (a CI artifact). Every file goes through ``load_profile``,
the one reader of the contract, and all of them must speak the same schema version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import InputError
from edgeship.profiles.schema import PROFILE_FILE_NAME, PROFILE_SCHEMA, Profile, load_profile


@dataclass(frozen=True)
class LoadedProfile:
    path: Path  # the profile.json file
    profile: Profile

    @property
    def folder(self) -> Path:
        """Where the profile's relative paths (timelines, raw outputs) start."""
        return self.path.parent


def profile_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Every profile.json named by ``inputs`` (files, or folders searched recursively), in a stable order."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            inside = sorted(path.rglob(PROFILE_FILE_NAME))
            if not inside:
                raise InputError(
                    f"{path} holds no {PROFILE_FILE_NAME}; name a RUNS_DIR written by `edgeship profile -o`"
                )
            found += inside
        else:
            raise InputError(
                f"{path} does not exist; expected a RUNS_DIR, a profile folder or a profile.json"
            )
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise InputError("no profiles given; name a RUNS_DIR or profile.json files")
    return unique


def load_profiles(inputs: Iterable[str | Path]) -> list[LoadedProfile]:
    """Load and validate every profile; InputError names the first bad file (nothing is half-read)."""
    paths = profile_paths(inputs)
    for path in paths:
        schema = _schema_of(path)
        if schema is not None and schema != PROFILE_SCHEMA:
            raise InputError(
                f"{path} is a {schema} profile; this edgeship reads {PROFILE_SCHEMA} "
                "(profile again with this version, or use the edgeship that wrote it)"
            )
    return [LoadedProfile(path, load_profile(path)) for path in paths]


def _schema_of(path: Path) -> str | None:
    """The schema key, when the file is JSON with one (load_profile reports every other problem)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    schema = data.get("schema") if isinstance(data, dict) else None
    return schema if isinstance(schema, str) else None
