"""Find and load the profile.json files a report or gate reads: RUNS_DIRs, profile folders, files.

``edgeship profile -o RUNS_DIR`` writes ``RUNS_DIR/<serial>/<sha12>/profile.json``; a user may also name one
such folder, or to a profile.json copied anywhere (a CI artifact). Every file goes through ``load_profile``,
the one reader of the contract, and all of them must speak the same schema version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeship.errors import InputError
from edgeship.profiles.schema import PROFILE_FILE_NAME, Profile, load_profile


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
    """Load and validate every profile; InputError names the first bad file (a profile of another schema
    version included), before anything is computed from any of them."""
    return [LoadedProfile(path, load_profile(path)) for path in profile_paths(inputs)]
