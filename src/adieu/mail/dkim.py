"""DKIM signing (RFC 6376) with the ``cryptography`` package.

Relaxed/relaxed canonicalisation, RSA-SHA256 and optionally Ed25519-SHA256
(RFC 8463). RFC 8058 §4 requires that List-Unsubscribe and
List-Unsubscribe-Post are covered by the signature, RFC 9477 §3.1.4 the
same of CFBL-Address; they (and From, List-Id, CFBL-Feedback-ID) are
"over-signed" — named once more than they occur — so that nobody can add a
second copy without breaking the signature.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from adieu.errors import InvalidInput, KeyRingError

#: Headers signed when present (RFC 6376 §5.4.1 recommends From, To, Subject,
#: Date, Message-ID and the MIME headers; RFC 8058 §4 adds the two list ones,
#: RFC 9477 the CFBL ones).
SIGNED = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "list-id",
    "cfbl-address",
    "cfbl-feedback-id",
)
OVERSIGNED = (
    "from",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "cfbl-address",
    "cfbl-feedback-id",
)

_WSP = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r\n(?=[ \t])")
#: A run of WSP that is not already a single SP.
_WSP_RUN = re.compile(rb"[ \t]{2,}|\t")
_LF = re.compile(rb"\r?\n")
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def split_message(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers as (name, raw field including the name) and the body, CRLF form."""
    data = crlf(data)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, body = data, b""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + b"\r\n" + line)
        elif b":" in line:
            fields.append((line.split(b":", 1)[0].strip().lower(), line))
    return fields, body


def crlf(data: bytes) -> bytes:
    """``data`` with every bare LF made CRLF (a bare CR stays as it is)."""
    if data.count(b"\n") == data.count(b"\r\n"):
        return data  # already: the usual case, without a pass of the expression
    return _LF.sub(b"\r\n", data)


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 (``body`` in CRLF form), over the whole body at once:
    every run of WSP becomes one SP, the SP left at the end of a line goes,
    then the empty lines at the end; a body that is not empty ends in CRLF."""
    if b"\t" in body or b"  " in body:
        body = _WSP_RUN.sub(b" ", body)
    body = body.replace(b" \r\n", b"\r\n").rstrip(b" ")
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def relaxed_body_by_line(body: bytes) -> bytes:
    """The same, line by line as §3.4.4 words it: the reference
    ``relaxed_body`` is tested against."""
    lines = [_WSP.sub(b" ", line).rstrip(b" ") for line in body.split(b"\r\n")]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 §3.4.2, without the trailing CRLF."""
    name, _, value = _FOLD.sub(b"", raw).partition(b":")
    value = _WSP.sub(b" ", value.replace(b"\r\n", b"")).strip(b" ")
    return name.strip().lower() + b":" + value


@dataclass(frozen=True, slots=True)
class DKIMKey:
    selector: str
    key: PrivateKey

    @property
    def algorithm(self) -> str:
        return "ed25519-sha256" if isinstance(self.key, ed25519.Ed25519PrivateKey) else "rsa-sha256"

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            # RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data.
            return self.key.sign(hashlib.sha256(data).digest())
        return self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())


class DKIMSigner:
    """Signs messages for one domain with one or more keys (RSA, Ed25519)."""

    def __init__(self, domain: str, keys: Sequence[DKIMKey]) -> None:
        if not keys:
            raise ValueError("a DKIM signer needs a key")
        self.domain = domain
        self.keys = tuple(keys)

    def signature_headers(self, message: bytes, now: int | None = None) -> list[bytes]:
        """``DKIM-Signature:`` fields (CRLF-terminated) to prepend to ``message``."""
        names, signed, body = self._canonical(message)
        return self._fields(names, signed, hashlib.sha256(body).digest(), now)

    def sign(self, message: bytes, now: int | None = None) -> bytes:
        message = crlf(message)
        return b"".join(self.signature_headers(message, now)) + message

    def prepare(self, message: bytes, markers: Sequence[bytes]) -> Prepared:
        """``message`` read and canonicalised once, for many copies that
        differ from it only where ``markers`` stand (``Prepared.sign``)."""
        message = crlf(message)
        names, signed, body = self._canonical(message)
        return Prepared(self, message, names, signed, body, tuple(markers))

    @staticmethod
    def _canonical(message: bytes) -> tuple[list[str], bytes, bytes]:
        """The h= names, the relaxed form of the signed header fields, and
        the relaxed body."""
        fields, body = split_message(message)
        present = [name for name, _ in fields]
        names: list[str] = []
        for name in SIGNED:
            count = present.count(name.encode())
            names.extend([name] * (count + (1 if name in OVERSIGNED else 0)))
        chosen = _select(fields, names)
        signed = b"".join(relaxed_header(raw) + b"\r\n" for raw in chosen)
        return names, signed, relaxed_body(body)

    def _fields(
        self, names: list[str], signed: bytes, body_digest: bytes, now: int | None
    ) -> list[bytes]:
        body_hash = base64.b64encode(body_digest).decode()
        stamp = int(time.time() if now is None else now)
        out = []
        for key in self.keys:
            # Spaces only where RFC 6376 allows folding white space (after the
            # tag separators, around the colons of h=), so that folding never
            # changes the relaxed form; only the b= value is cut anywhere (it
            # is removed before verifying).
            tags = [
                "v=1;",
                f"a={key.algorithm};",
                "c=relaxed/relaxed;",
                f"d={self.domain};",
                f"s={key.selector};",
                f"t={stamp};",
                "h=" + ": ".join(names) + ";",
                f"bh={body_hash};",
                "b=",
            ]
            unsigned = _fold(("DKIM-Signature: " + " ".join(tags)).encode())
            signature = base64.b64encode(key.sign(signed + relaxed_header(unsigned)))
            out.append(_append_b(unsigned, signature) + b"\r\n")
        return out


#: What may stand in for a marker: no white space, no line break, never empty
#: (so that the relaxed forms do not change around it).
_FILL = re.compile(rb"[!-~]+")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A message canonicalised once (``DKIMSigner.prepare``). Relaxed
    canonicalisation changes only white space and line ends, so a marker
    (text without either) stands verbatim in the relaxed forms, and swapping
    it there for a value without either gives the relaxed forms of the
    swapped message: each copy is signed without being read again."""

    signer: DKIMSigner
    message: bytes
    names: list[str]
    signed: bytes
    body: bytes
    markers: tuple[bytes, ...]

    def sign(self, values: Sequence[bytes], now: int | None = None) -> bytes:
        """The message with each marker swapped for its value, signed: the
        same bytes as ``DKIMSigner.sign`` of the swapped message."""
        message, signed, body = self.message, self.signed, self.body
        for marker, value in zip(self.markers, values, strict=True):
            if not _FILL.fullmatch(value):
                raise ValueError("a marker's value has no white space and is not empty")
            message = message.replace(marker, value)
            signed = signed.replace(marker, value)
            body = body.replace(marker, value)
        digest = hashlib.sha256(body).digest()
        return b"".join(self.signer._fields(self.names, signed, digest, now)) + message


def _select(fields: list[tuple[bytes, bytes]], names: Iterable[str]) -> list[bytes]:
    """RFC 6376 §5.4.2: for repeated names take instances from the bottom up;
    a name with no instance left signs as nothing (over-signing)."""
    used: dict[bytes, int] = {}
    chosen = []
    for name in names:
        key = name.encode()
        instances = [raw for n, raw in fields if n == key]
        taken = used.get(key, 0)
        if taken < len(instances):
            chosen.append(instances[len(instances) - 1 - taken])
        used[key] = taken + 1
    return chosen


def _fold(field: bytes, width: int = 76) -> bytes:
    """Fold at spaces so lines stay under RFC 5322's 78 characters."""
    lines: list[bytes] = []
    current = b""
    for token in field.split(b" "):
        if current and len(current) + 1 + len(token) > width:
            lines.append(current)
            current = token
        else:
            current = current + b" " + token if current else token
    lines.append(current)
    return b"\r\n\t".join(lines)


def _append_b(folded: bytes, signature: bytes, width: int = 76) -> bytes:
    """Append the b= value, continuing it on new lines where it runs long."""
    last = folded.rsplit(b"\r\n\t", 1)[-1]
    room = max(width - len(last), 0)
    out = folded + signature[:room]
    rest = signature[room:]
    while rest:
        out += b"\r\n\t" + rest[: width - 1]
        rest = rest[width - 1 :]
    return out


# -- keys ----------------------------------------------------------------------


def key_path(data_dir: Path, selector: str, ed25519_key: bool = False) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", selector):
        raise InvalidInput("A DKIM selector is letters, digits, '.', '_' or '-'.")
    return data_dir / f"dkim-{selector}{'-ed25519' if ed25519_key else ''}.pem"


def create_key(path: Path, *, ed25519_key: bool = False, bits: int = 2048) -> PrivateKey:
    """A new private key, written with mode 0600; refuses to overwrite one."""
    key: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate()
        if ed25519_key
        else rsa.generate_private_key(public_exponent=65537, key_size=bits)
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("xb") as fh:
            path.chmod(0o600)
            fh.write(pem)
    except FileExistsError:
        raise InvalidInput(f"{path} already exists; remove it first to make a new key.") from None
    return key


def load_key(path: Path) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise KeyRingError(f"The DKIM key {path} cannot be read: {exc}.") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyRingError(f"The DKIM key {path} is neither RSA nor Ed25519.")
    return key


def dns_record(domain: str, selector: str, key: PrivateKey) -> str:
    """The TXT record to publish, in zone-file form (strings of ≤255 characters)."""
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        kind = "ed25519"
    else:
        raw = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kind = "rsa"
    text = f"v=DKIM1; k={kind}; p={base64.b64encode(raw).decode()}"
    parts = " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {parts} )"
