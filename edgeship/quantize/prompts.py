"""The held-out prompts `verify` scores: the built-in versioned set, or a user's file.

A user's ``--prompts FILE`` is UTF-8 text, one prompt per block separated by lines holding only ``---``
(a file without such lines is one prompt), or a YAML file shaped like ``prompt_set_v1.yaml``
(``version``, ``prompts: [{name, text}]``). The set's sha256 goes into the accuracy block, so two results
are comparable only when it matches.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgeship.errors import UsageError

BUILTIN_FILE = Path(__file__).with_name("prompt_set_v1.yaml")
BUILTIN_NAME = "builtin"
_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
MAX_PROMPT_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str


@dataclass(frozen=True)
class PromptSet:
    source: str  # "builtin" or the file's path
    version: str | None
    prompts: tuple[Prompt, ...]

    @property
    def sha256(self) -> str:
        """Digest of the prompts' names and texts (not of the file: comments do not change it)."""
        payload = json.dumps([[p.name, p.text] for p in self.prompts], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def describe(self) -> dict[str, object]:
        return {
            "source": self.source,
            "version": self.version,
            "prompts": len(self.prompts),
            "sha256": self.sha256,
        }


def builtin_prompts() -> PromptSet:
    return _from_yaml(BUILTIN_FILE.read_text(encoding="utf-8"), BUILTIN_NAME, f"{BUILTIN_FILE}")


def load_prompts(path: str | Path | None) -> PromptSet:
    """The built-in set when ``path`` is None, else the user's file (UsageError when unusable)."""
    if path is None:
        return builtin_prompts()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"prompts file {path} does not exist or is not a file")
    raw = path.read_bytes()[: MAX_PROMPT_FILE_BYTES + 1]
    if len(raw) > MAX_PROMPT_FILE_BYTES:
        raise UsageError(f"prompts file {path} is larger than 16 MiB; give a smaller set of prompts")
    if b"\0" in raw:
        raise UsageError(f"prompts file {path} is not text (it holds NUL bytes); give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"prompts file {path} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
        ) from exc
    if path.suffix in (".yaml", ".yml"):
        return _from_yaml(text, str(path), f"prompts file {path}")
    blocks = [block.strip() for block in _SEPARATOR.split(text)]
    prompts = tuple(Prompt(f"prompt-{i + 1}", block) for i, block in enumerate(b for b in blocks if b))
    if not prompts:
        raise UsageError(f"prompts file {path} has no text; give one prompt per block separated by '---'")
    return PromptSet(str(path), None, prompts)


def _from_yaml(text: str, source: str, where: str) -> PromptSet:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{where} is not valid YAML: {exc}".splitlines()[0]) from exc
    entries = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{where} needs a non-empty 'prompts' list of {{name, text}} entries")
    prompts = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
            raise UsageError(f"{where}: prompts[{i}] needs a non-empty 'text'")
        prompts.append(Prompt(str(entry.get("name") or f"prompt-{i + 1}"), entry["text"].strip()))
    version = data.get("version")
    return PromptSet(source, str(version) if version is not None else None, tuple(prompts))
