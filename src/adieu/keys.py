"""The key file: the address-hash key and the ring of token keys; and the
privacy of every file that holds secrets or addresses.

Created on first use with 0600 permissions. The hash key never changes (it is
the ledger's key for every address); token keys rotate: ``adieu keys rotate``
appends a key, new tokens use the newest, old tokens keep opening (CASL wants
links to work for at least 60 days; by default they never expire).

The data directory is created with mode 0700, and Adieu's files in it (the
SQLite database and its -wal and -shm, the key file, DKIM keys) are readable
by their owner only (0600). Files and directories from before that are open to
other users are tightened when Adieu starts, each with one line on stderr.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from adieu.errors import KeyRingError

MAX_KEY_ID = 0xFFFF


@dataclass(frozen=True, slots=True)
class KeyRing:
    hash_key: bytes
    token_keys: dict[int, bytes]
    created: dict[int, str]

    @property
    def current_id(self) -> int:
        return max(self.token_keys)

    @classmethod
    def generate(cls) -> KeyRing:
        return cls(
            hash_key=secrets.token_bytes(32),
            token_keys={1: secrets.token_bytes(32)},
            created={1: _now()},
        )

    def rotated(self) -> KeyRing:
        new_id = self.current_id + 1
        if new_id > MAX_KEY_ID:
            raise KeyRingError("The key ring is full; it cannot hold another key.")
        return KeyRing(
            hash_key=self.hash_key,
            token_keys={**self.token_keys, new_id: secrets.token_bytes(32)},
            created={**self.created, new_id: _now()},
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "hash_key": _b64(self.hash_key),
                "token_keys": [
                    {"id": kid, "key": _b64(key), "created": self.created.get(kid, "")}
                    for kid, key in sorted(self.token_keys.items())
                ],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        try:
            data = json.loads(text)
            hash_key = base64.b64decode(data["hash_key"], validate=True)
            token_keys = {
                int(k["id"]): base64.b64decode(k["key"], validate=True) for k in data["token_keys"]
            }
            created = {int(k["id"]): str(k.get("created", "")) for k in data["token_keys"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyRingError(f"The key file cannot be read: {exc}") from None
        if len(hash_key) < 16 or not token_keys:
            raise KeyRingError("The key file is incomplete.")
        if any(len(k) not in (16, 24, 32) for k in token_keys.values()):
            raise KeyRingError("The key file holds a token key of the wrong length.")
        if any(not 0 < kid <= MAX_KEY_ID for kid in token_keys):
            raise KeyRingError("The key file holds a key id out of range.")
        return cls(hash_key=hash_key, token_keys=token_keys, created=created)


def load_or_create(path: Path) -> KeyRing:
    """Read the key file, creating it (and its directory) on first use."""
    private_dir(path.parent, own=path.name)
    private_file(path)
    if path.exists():
        try:
            return KeyRing.from_json(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KeyRingError(f"The key file {path} cannot be read: {exc.strerror}.") from None
    ring = KeyRing.generate()
    try:
        _write_new(path, ring)
    except FileExistsError:  # another process created it first: use theirs
        return KeyRing.from_json(path.read_text(encoding="utf-8"))
    return ring


def rotate(path: Path) -> KeyRing:
    ring = load_or_create(path).rotated()
    _replace(path, ring)
    return ring


def _write_new(path: Path, ring: KeyRing) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())


def _replace(path: Path, ring: KeyRing) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- private files ------------------------------------------------------------

#: The files Adieu keeps in its data directory.
_OWN = re.compile(
    r"adieu\.db(?:-wal|-shm|-journal)?|keys\.json(?:\.\d+\.tmp)?|dkim-[A-Za-z0-9._-]+\.pem"
)


def private_dir(path: Path, *, own: str | None = None) -> None:
    """Make ``path`` a private directory for Adieu's files.

    Created with mode 0700. An existing one: each of Adieu's files in it (and
    any file whose name starts with ``own``, such as a database's -wal and
    -shm) that others can read is made 0600, and the directory itself, when
    others can open it and it holds nothing but Adieu's files, is made 0700.
    A directory shared with other files is left as it is (its Adieu files are
    private all the same). Each change is one line on stderr."""
    try:
        path.mkdir(mode=0o700, parents=True)
        return
    except FileExistsError:
        pass
    except OSError:
        return  # what is done in it next says why
    try:
        entries = [(e.name, e.is_file(follow_symlinks=False)) for e in os.scandir(path)]
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return

    def ours(name: str) -> bool:
        return bool(_OWN.fullmatch(name)) or (own is not None and name.startswith(own))

    for name, is_file in entries:
        if is_file and ours(name):
            private_file(path / name)
    if mode & 0o077 and all(ours(name) for name, _ in entries):
        _tighten(path, mode, 0o700)


def private_file(path: Path) -> None:
    """Make an existing file readable by its owner only (0600), saying so."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077:
        _tighten(path, mode, mode & 0o700)


def create_private(path: Path) -> bool:
    """Create an empty file with mode 0600 (for a file another library then
    fills, such as SQLite's database); False when it was there already."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return False  # what opens it next says why
    return True


def _tighten(path: Path, old: int, new: int) -> None:
    try:
        os.chmod(path, new)
    except OSError as exc:
        _say(
            f"Warning: {path} is open to other users (mode {old:04o}) and could not be"
            f" made private: {exc.strerror or exc}."
        )
        return
    _say(f"Warning: {path} was open to other users (mode {old:04o}); it is now {new:04o}.")


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # no stderr to write to
        pass
