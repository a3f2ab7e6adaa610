"""Every requirement id and design reference cited in the code resolves in ``docs/``.

Comments cite requirements as ``R<number>`` (defined in docs/REQUIREMENTS.md)
and the design as ``docs/<NAME>.md`` (optionally with a quoted section name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path


def _repository_root() -> Path:
    """The nearest parent directory with a ``pyproject.toml`` (tests may live in subfolders)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    raise RuntimeError(f"no pyproject.toml above {__file__}")


ROOT = _repository_root()
SRC = ROOT / "src"
TESTS = ROOT / "tests"
DOCS = ROOT / "docs"
REQUIREMENTS = DOCS / "REQUIREMENTS.md"

#: A requirement id as cited: ``R`` and a number, standing alone. Letters, digits,
#: ``_`` and ``-`` on either side make it part of something else (``RFC``, ``R2D2``,
#: a base64url token, a hex string).
CITED_ID = re.compile(r"(?<![\w-])R(\d{1,3})(?![\w-])")
#: Where REQUIREMENTS.md defines an id: a bold lead (``- **R1 …**``) or a heading.
DEFINED_ID = re.compile(r"\*\*R(\d+)\b|^#+ R(\d+)\b", re.MULTILINE)
#: A path into docs/, optionally followed by a quoted section: docs/ARCHITECTURE.md "Tokens".
DOC_PATH = re.compile(r"""\bdocs/([\w./-]+?\.md)\b(?:\s+["“]([^"”\n]+)["”])?""")
#: A document named without its folder (``DESIGN.md`` rather than ``docs/ARCHITECTURE.md``).
BARE_DOC = re.compile(r"(?<!docs/)(?<![\w-])(?:ARCHITECTURE|DESIGN|REQUIREMENTS)\.md\b")
HEADING = re.compile(r"^#+\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _generated(part: str) -> bool:
    """Folders under src/ that are built, not written: byte code, package metadata."""
    return part == "__pycache__" or part.endswith(".egg-info")


def _files(base: Path, patterns: Iterable[str]) -> Iterator[Path]:
    for pattern in patterns:
        for path in sorted(base.rglob(pattern)):
            if path.is_file() and not any(map(_generated, path.relative_to(base).parts)):
                yield path


def _text(path: Path) -> str | None:
    """The file as text, or None for a binary file."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{_line_of(text, offset)}"


def _citing_files() -> list[Path]:
    return [
        *_files(SRC, ["*.py", "*.html"]),
        *_files(TESTS, ["*.py"]),
    ]


def _defined_ids() -> set[int]:
    text = REQUIREMENTS.read_text(encoding="utf-8")
    return {int(bold or heading) for bold, heading in DEFINED_ID.findall(text)}


def _headings(doc: Path) -> list[str]:
    return [h.strip().lower() for h in HEADING.findall(doc.read_text(encoding="utf-8"))]


def test_requirements_define_r1_to_r15() -> None:
    assert _defined_ids() == set(range(1, 16))


def test_every_cited_requirement_id_is_defined() -> None:
    defined = _defined_ids()
    undefined: list[str] = []
    cited = 0
    for path in _citing_files():
        text = _text(path)
        if text is None:
            continue
        for match in CITED_ID.finditer(text):
            cited += 1
            if int(match.group(1)) not in defined:
                undefined.append(f"{_where(path, text, match.start())}: R{match.group(1)}")
    assert cited, "no requirement ids found: is the source tree where this test looks?"
    assert not undefined, "requirement ids not defined in docs/REQUIREMENTS.md:\n" + "\n".join(
        undefined
    )


def test_every_cited_doc_exists() -> None:
    missing: list[str] = []
    for path in _files(SRC, ["*.py", "*.html"]):
        text = _text(path)
        if text is None:
            continue
        for match in DOC_PATH.finditer(text):
            if not (DOCS / match.group(1)).is_file():
                missing.append(f"{_where(path, text, match.start())}: docs/{match.group(1)}")
    assert not missing, "cited documents that do not exist:\n" + "\n".join(missing)


def test_every_cited_section_exists() -> None:
    """``docs/ARCHITECTURE.md "Tokens"`` names a heading of that document."""
    missing: list[str] = []
    for path in _files(SRC, ["*.py", "*.html"]):
        text = _text(path)
        if text is None:
            continue
        for match in DOC_PATH.finditer(text):
            doc, section = DOCS / match.group(1), match.group(2)
            if section is None or not doc.is_file():
                continue  # a missing document is test_every_cited_doc_exists's failure
            wanted = section.strip().lower()
            if not any(h == wanted or h.startswith(f"{wanted} ") for h in _headings(doc)):
                missing.append(f"{_where(path, text, match.start())}: {section!r} in {doc.name}")
    assert not missing, "cited sections that are not headings:\n" + "\n".join(missing)


def test_docs_are_cited_with_their_folder() -> None:
    bare: list[str] = []
    for path in _files(SRC, ["*"]):
        text = _text(path)
        if text is None:
            continue
        for match in BARE_DOC.finditer(text):
            bare.append(f"{_where(path, text, match.start())}: {match.group(0)}")
    assert not bare, "write docs/ARCHITECTURE.md or docs/REQUIREMENTS.md:\n" + "\n".join(bare)
