from __future__ import annotations

import stat
from pathlib import Path

import pytest

from adieu import keys
from adieu.errors import KeyRingError


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "keys.json"
    first = keys.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys.load_or_create(path) == first


def test_rotate_adds_a_key_and_keeps_the_hash_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = keys.load_or_create(path)
    second = keys.rotate(path)
    assert second.current_id == 2
    assert second.token_keys[1] == first.token_keys[1]
    assert second.hash_key == first.hash_key
    assert keys.load_or_create(path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content", ["", "{}", "not json", '{"hash_key": "AAAA", "token_keys": []}']
)
def test_a_broken_key_file_is_reported_not_replaced(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(KeyRingError):
        keys.load_or_create(path)
    assert path.read_text() == content
