"""The mail path: unsubscribe headers, the visible link, DKIM and lint."""

from __future__ import annotations

import base64
import re
import stat
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adieu.cli import main
from adieu.errors import InvalidInput
from adieu.mail.dkim import DKIMKey, DKIMSigner, create_key, dns_record, key_path
from adieu.mail.lint import ERROR, lint
from adieu.mail.stamper import Stamper
from adieu.service import Adieu
from adieu.settings import Settings
from adieu.tokens import COMPACT_LENGTH
from conftest import MakeSettings
from support import text_of

RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ED = ed25519.Ed25519PrivateKey.generate()


def dns(name: bytes, timeout: int = 5) -> bytes:
    if name.startswith(b"ed."):
        raw = ED.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)
    der = RSA.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def verify(data: bytes) -> list[bool]:
    checker = dkim.DKIM(data)
    count = data.split(b"\r\n\r\n")[0].lower().count(
        b"\ndkim-signature:"
    ) + data.lower().startswith(b"dkim-signature:")
    results = []
    for i in range(count):
        try:
            results.append(bool(checker.verify(idx=i, dnsfunc=dns)))
        except dkim.ValidationError:
            results.append(False)
    return results


SIMPLE = (
    b"From: News <news@example.com>\r\nTo: jane@example.org\r\nSubject: Hello\r\n"
    b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello  there \r\n\r\n"
)


def test_dkim_signatures_verify_with_dkimpy_and_break_when_tampered() -> None:
    signer = DKIMSigner("example.com", [DKIMKey("rsa", RSA), DKIMKey("ed", ED)])
    message = SIMPLE.replace(
        b"\r\n\r\n",
        b"\r\nList-Unsubscribe: <https://x.example/u/T>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n",
        1,
    )
    signed = signer.sign(message)
    assert verify(signed) == [True, True]
    header = signed.split(b"\r\n\r\n")[0]
    assert all(
        len(line) <= 78 for line in header.split(b"\r\n") if line.startswith((b"DKIM", b"\t"))
    )
    for tampered in (
        signed.replace(b"<https://x.example/u/T>", b"<https://x.example/u/X>"),
        signed.replace(b"\r\n\r\nHello", b"\r\nList-Unsubscribe: <https://evil>\r\n\r\nHello"),
        signed.replace(b"Hello  there", b"Hello  where"),
    ):
        assert verify(tampered) == [False, False]


def test_dns_record_and_key_file(tmp_path: Path) -> None:
    path = key_path(tmp_path, "s1")
    key = create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    record = dns_record("example.com", "s1", key)
    assert record.startswith('s1._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=')
    assert all(len(chunk) <= 255 for chunk in record.split('"')[1::2])
    with pytest.raises(InvalidInput):
        create_key(path)
    with pytest.raises(InvalidInput):
        key_path(tmp_path, "bad selector")


@pytest.fixture
def mailer(make_settings: MakeSettings) -> Iterator[Adieu]:
    settings = make_settings(
        mailto_domain="unsub.example.net",
        dkim_domain="example.com",
        dkim_selector="s1",
        feedback_sender="examplenews",
    )
    create_key(key_path(settings.data_dir, "s1"))
    app = Adieu(settings)
    yield app
    app.close()


def _stamp(app: Adieu, data: bytes, to: str = "Jane@Example.org", **kw: str) -> EmailMessage:
    out = Stamper(app).stamp(data, to, **kw)
    parsed = message_from_bytes(out, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_stamp_sets_one_of_each_header_and_a_token_for_this_recipient(mailer: Adieu) -> None:
    mailer.ledger.add_topic("news", "News")
    data = SIMPLE.replace(b"Subject", b"List-Unsubscribe: <mailto:old@example.com>\r\nSubject", 1)
    out = Stamper(mailer).stamp(data, "Jane@Example.org", topic="news", campaign="nov-2026")
    message = message_from_bytes(out, policy=policy.default)
    assert len(message.get_all("List-Unsubscribe") or []) == 1
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Feedback-ID"] == "nov-2026:news:examplenews"
    value = str(message["List-Unsubscribe"])
    url = value.split("<")[1].split(">")[0]
    assert url.startswith("https://mail.example.net/u/") and "mailto:unsubscribe+" in value
    payload = mailer.codec.open(url.rsplit("/", 1)[1])
    assert (payload.address, payload.scope, payload.campaign) == (
        "jane@example.org",
        "news",
        "nov-2026",
    )
    assert url in text_of(message, "plain")
    assert not [f for f in lint(out) if f.severity == ERROR]


def test_dkim_covers_both_unsubscribe_headers(mailer: Adieu) -> None:
    # the test key stands in for DNS: swap the signer's key for the module's RSA key
    stamper = Stamper(mailer)
    stamper.signer = DKIMSigner("example.com", [DKIMKey("rsa", RSA)])
    out = stamper.stamp(SIMPLE, "jane@example.org")
    assert verify(out) == [True]
    h = out.split(b"\r\n\r\n")[0].replace(b"\r\n\t", b" ").split(b"h=")[1].split(b";")[0]
    names = [n.strip() for n in h.split(b":")]
    assert names.count(b"list-unsubscribe") == 2 and names.count(b"list-unsubscribe-post") == 2


def _multipart(text_cte: str, html_cte: str, charset: str = "iso-8859-1") -> bytes:
    message = EmailMessage()
    message["From"] = "news@example.com"
    message["To"] = "jane@example.org"
    message["Subject"] = "Månadsbrev"
    message.set_content("Hej där! Nyheter för dig.", charset=charset, cte=text_cte)
    related = EmailMessage()
    related.set_content(
        "<html><body><p>Hej där</p><img src='cid:logo'></body></html>", subtype="html", cte=html_cte
    )
    related.add_related(b"\x89PNG\r\n", maintype="image", subtype="png", cid="<logo>")
    message.make_alternative()
    message.attach(related)
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="a.pdf")
    return message.as_bytes(policy=policy.SMTP)


@pytest.mark.parametrize(
    ("text_cte", "html_cte"),
    [("quoted-printable", "base64"), ("8bit", "quoted-printable"), ("base64", "8bit")],
)
def test_footer_in_every_readable_part_keeps_charsets_and_nesting(
    mailer: Adieu, text_cte: str, html_cte: str
) -> None:
    out = _stamp(mailer, _multipart(text_cte, html_cte), locale="sv")
    plain = out.get_body(("plain",))
    html = out.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content_charset() == "iso-8859-1"
    assert "Hej där! Nyheter för dig." in plain.get_content()
    assert "Avregistrera: https://mail.example.net/u/" in plain.get_content()
    body = html.get_content()
    assert body.index("Hej där") < body.index(">Avregistrera</a>") < body.index("</body>")
    kinds = [p.get_content_type() for p in out.walk()]
    assert kinds.count("image/png") == 1 and kinds.count("application/pdf") == 1
    pdf = next(p for p in out.walk() if p.get_content_type() == "application/pdf")
    assert pdf.get_content() == b"%PDF-1.4"


def test_placeholders_are_filled_instead_of_a_footer(mailer: Adieu) -> None:
    data = SIMPLE.replace(b"Hello  there", b"Bye: {{ unsubscribe_url }} | {{preferences_url}}")
    body = text_of(_stamp(mailer, data), "plain")
    assert "Bye: https://mail.example.net/u/" in body and "| https://mail.example.net/p/" in body
    assert "-- \n" not in body


def test_footer_at_the_top_with_emphasis(tmp_path: Path) -> None:
    app = Adieu(
        Settings(
            data_dir=tmp_path / "d",
            base_url="https://m.example",
            footer_position="top",
            footer_emphasis="bold,centred",
        )
    )
    data = SIMPLE.replace(b"text/plain", b"text/html").replace(
        b"Hello  there", b"<body><p>News</p></body>"
    )
    body = text_of(_stamp(app, data), "html")
    assert body.index(">Unsubscribe</a>") < body.index("News")
    assert "font-weight:bold" in body and "text-align:center" in body


@pytest.mark.parametrize("campaign", ["x\r\nBcc: victim@example.com", "a\nb"])
def test_values_cannot_inject_headers(mailer: Adieu, campaign: str) -> None:
    with pytest.raises(InvalidInput):
        Stamper(mailer).stamp(SIMPLE, "jane@example.org", campaign=campaign)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=300
    ),
    charset=st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "shift_jis", "us-ascii"]),
    subtype=st.sampled_from(["plain", "html"]),
    cte=st.sampled_from(["quoted-printable", "base64", "8bit"]),
)
def test_any_message_comes_out_parseable_with_its_text(
    tmp_path_factory: pytest.TempPathFactory, text: str, charset: str, subtype: str, cte: str
) -> None:
    try:
        text.encode(charset)
    except UnicodeEncodeError:
        charset = "utf-8"
    message = EmailMessage()
    message["From"] = "news@example.com"
    message["Subject"] = "Test"
    message.set_content(
        text,
        subtype=subtype,
        charset=charset,
        cte=cte if cte != "8bit" or charset != "us-ascii" else "7bit",
    )
    app = _PROPERTY_APP.get("app")
    if app is None:
        app = Adieu(Settings(data_dir=tmp_path_factory.mktemp("p"), base_url="https://m.example"))
        _PROPERTY_APP["app"] = app
    out = Stamper(app).stamp(message.as_bytes(policy=policy.SMTP), "jane@example.org")
    parsed = message_from_bytes(out, policy=policy.default)
    assert len(parsed.get_all("List-Unsubscribe") or []) == 1
    body = text_of(parsed, subtype)
    assert text.rstrip() in body  # the reader's text is all still there
    assert "https://m.example/u/" in body


_PROPERTY_APP: dict[str, Adieu] = {}


def test_lint_finds_what_a_reader_would_miss() -> None:
    base = SIMPLE.replace(b"text/plain", b"text/html")

    def findings(html: bytes, extra: bytes = b"") -> set[str]:
        data = base.replace(b"Hello  there", html).replace(
            b"Subject",
            b"List-Unsubscribe: <https://x.example/u/T>\r\n"
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" + extra + b"Subject",
            1,
        )
        return {f"{f.rule}:{f.message}" for f in lint(data) if f.severity == ERROR}

    assert findings(b'<p><a href="https://x.example/u/T">Unsubscribe</a></p>') == set()
    assert any(
        "tiny" in f
        for f in findings(b'<a href="https://x.example/u/T" style="font-size:6px">x</a>')
    )
    assert any(
        "hidden" in f
        for f in findings(b'<div style="display:none"><a href="https://x.example/u/T">u</a></div>')
    )
    assert any(
        "image only" in f
        for f in findings(b'<a href="https://x.example/u/T"><img src="x.png"></a>')
    )
    assert any(
        "colour" in f
        for f in findings(
            b'<a href="https://x.example/u/T" style="color:#fff;background-color:#fff">'
            b"Unsubscribe</a>"
        )
    )
    assert any("no unsubscribe link" in f for f in findings(b"<p>Just news</p>"))
    assert any(
        "DKIM" in f
        for f in findings(
            b'<a href="https://x.example/u/T">Unsubscribe</a>',
            b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from:to; bh=x; b=y\r\n",
        )
    )
    bare = lint(SIMPLE)
    assert {f.rule for f in bare} >= {"R8", "RFC8058", "R1"}


def test_cli_keys_dkim_stamp_and_lint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADIEU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADIEU_BASE_URL", "https://mail.example.net")
    runner = CliRunner()
    made = runner.invoke(main, ["keys", "dkim", "--domain", "example.com", "--selector", "s9"])
    assert made.exit_code == 0 and "s9._domainkey.example.com. IN TXT" in made.output
    source = tmp_path / "m.eml"
    source.write_bytes(SIMPLE)
    monkeypatch.setenv("ADIEU_DKIM_DOMAIN", "example.com")
    monkeypatch.setenv("ADIEU_DKIM_SELECTOR", "s9")
    stamped = runner.invoke(main, ["stamp", str(source), "--to", "jane@example.org"])
    assert stamped.exit_code == 0 and stamped.stdout_bytes.startswith(b"DKIM-Signature:")
    out = tmp_path / "out.eml"
    out.write_bytes(stamped.stdout_bytes)
    assert runner.invoke(main, ["lint", str(out)]).exit_code == 0
    bad = runner.invoke(main, ["lint", str(source), "--json"])
    assert bad.exit_code == 1 and '"errors": ' in bad.output
    missing = runner.invoke(main, ["lint", str(tmp_path / "nope.eml")])
    assert missing.exit_code == 2 and "Cannot read" in missing.output


def test_later_copies_from_the_template_equal_a_full_stamp(mailer: Adieu) -> None:
    stamper = Stamper(mailer)
    stamper.signer = None
    first = stamper.stamp(SIMPLE, "ann@example.org", campaign="c1")
    second = stamper.stamp(SIMPLE, "bob@example.org", campaign="c1")
    assert [t.data is not None for t in stamper._templates.values()] == [True]
    full = stamper._stamp_in_full(SIMPLE, "bob@example.org", None, "c1", None)
    tokens = re.compile(rb"(?<=/[up]/)[A-Za-z0-9_-]+|(?<=unsubscribe\+)[A-Za-z0-9_-]+")
    assert tokens.sub(b"T", second) == tokens.sub(b"T", full)
    for data, who in ((first, "ann@example.org"), (second, "bob@example.org")):
        found = {m.group().decode() for m in tokens.finditer(data)}
        (token,) = [t for t in found if len(t) != COMPACT_LENGTH]  # the links'
        (compact,) = [t for t in found if len(t) == COMPACT_LENGTH]  # the mailto's
        assert mailer.codec.open(token).address == who
        assert mailer.codec.open_compact(compact).names(mailer.hasher.hash(who))
    # a footer that is not plain ASCII is stamped in full each time, still correct
    sv = stamper.stamp(SIMPLE, "cy@example.org", locale="sv")
    assert b"Avregistrera" in sv or b"Avregistrera".decode() in text_of(
        message_from_bytes(sv, policy=policy.default), "plain"
    )


def test_template_copies_are_signed_as_each_copy_would_be(mailer: Adieu) -> None:
    stamper = Stamper(mailer)
    assert stamper.signer is not None
    stamper.stamp(SIMPLE, "ann@example.org", campaign="c1")
    (template,) = stamper._templates.values()
    assert template.prepared is not None  # later copies take the prepared path
    copy = stamper.stamp(SIMPLE, "bob@example.org", campaign="c1")
    signature, rest = copy[: copy.index(b"From: ")], copy[copy.index(b"From: ") :]
    stamp = int(re.search(rb"t=(\d+);", signature).group(1))  # type: ignore[union-attr]
    assert copy == stamper.signer.sign(rest, now=stamp)


#: Body pieces: text, every kind of white space in runs, line ends bare and whole.
_PIECES = st.lists(
    st.sampled_from([b"a", b"b", b" ", b"\t", b"\r\n", b"\r", b"\n", b"  ", b"x y", b" \t "]),
    max_size=40,
)


@settings(max_examples=500)
@given(_PIECES)
def test_relaxed_body_equals_the_line_by_line_rule_and_dkimpy(pieces: list[bytes]) -> None:
    from dkim.canonicalization import Relaxed

    from adieu.mail.dkim import relaxed_body, relaxed_body_by_line

    body = b"".join(pieces)
    assert relaxed_body(body) == relaxed_body_by_line(body)
    # dkimpy keeps white space at the end of a last line without CRLF; a body
    # on the wire always ends in CRLF (SMTP's DATA adds it), and there the two agree.
    wire = body if body.endswith(b"\r\n") or not body else body + b"\r\n"
    assert relaxed_body(wire) == Relaxed.canonicalize_body(wire)


def test_relaxed_body_per_rfc_6376_examples() -> None:
    from adieu.mail.dkim import relaxed_body

    # RFC 6376 §3.4.6, the body of its example.
    assert relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"
    assert relaxed_body(b"") == relaxed_body(b"\r\n\r\n") == relaxed_body(b" \t\r\n ") == b""
    assert relaxed_body(b"last line  ") == b"last line\r\n"


@settings(max_examples=60, deadline=None)
@given(_PIECES)
def test_signatures_over_any_body_verify_with_dkimpy(pieces: list[bytes]) -> None:
    from adieu.mail.dkim import crlf

    body = crlf(b"".join(pieces))
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"  # as a message travels (SMTP's DATA ends with CRLF)
    head = SIMPLE.partition(b"\r\n\r\n")[0]
    signed = DKIMSigner("example.com", [DKIMKey("rsa", RSA)]).sign(head + b"\r\n\r\n" + body)
    assert verify(signed) == [True]
    assert verify(signed.replace(b"\r\n\r\n", b"\r\n\r\nmore", 1)) == [False]


# -- the mailto's compact token, List-Id and CFBL ----------------------------------------------


def _local_part(list_unsubscribe: str) -> str:
    uris: list[str] = re.findall(r"<([^>]*)>", list_unsubscribe)
    mailto = next(u for u in uris if u.startswith("mailto:"))
    return mailto.removeprefix("mailto:").rpartition("@")[0]


def test_the_mailto_local_part_fits_in_64_octets(mailer: Adieu) -> None:
    """RFC 5321 §4.5.3.1.1: a full token made it 104 octets or more."""
    mailer.ledger.add_topic("t" * 64, "The longest topic key")
    address = "a.rather.long.local.part@" + "sub." * 50 + "example.org"
    link = mailer.link(address, topic="t" * 64, campaign="c" * 100, locale="pt-BR")
    local = _local_part(link.headers["List-Unsubscribe"])
    assert len(local.encode()) <= 64 and local == f"unsubscribe+{link.compact}"
    assert local == local.lower()  # nothing an MTA folds to lower case changes it
    opened = mailer.codec.open_compact(local.removeprefix("unsubscribe+").upper())
    assert opened.names(mailer.hasher.hash(address)) and opened.names_topic("t" * 64)
    # the HTTPS link keeps the full token, which names everything itself
    assert mailer.codec.open(link.token).campaign == "c" * 100
    stamped = _stamp(mailer, SIMPLE, to=address)
    assert len(_local_part(str(stamped["List-Unsubscribe"])).encode()) <= 64


@pytest.fixture
def cfbl_mailer(make_settings: MakeSettings) -> Iterator[Adieu]:
    settings = make_settings(
        mailto_domain="unsub.example.net",
        complaint_address="fbl@reports.example.com",
        sender_name="Example News",
    )
    app = Adieu(settings)
    app.ledger.add_topic("offers", 'Offers & "deals"')
    yield app
    app.close()


def test_list_id_per_topic_and_for_all_marketing(cfbl_mailer: Adieu) -> None:
    stamped = _stamp(cfbl_mailer, SIMPLE, topic="offers")
    assert stamped.get_all("List-Id") == ['"Offers & \\"deals\\"" <offers.mail.example.net>']
    everything = _stamp(cfbl_mailer, SIMPLE.replace(b"Subject", b"List-Id: <x.y.z>\r\nSubject", 1))
    assert everything.get_all("List-Id") == ["Example News <all.mail.example.net>"]
    cfbl_mailer.ledger.add_topic("nyheter", "Nyheter för dig")
    swedish = _stamp(cfbl_mailer, SIMPLE, topic="nyheter")
    assert str(swedish["List-Id"]) == "Nyheter för dig <nyheter.mail.example.net>"


def test_list_id_without_a_domain_name_is_unmanaged(tmp_path: Path) -> None:
    app = Adieu(Settings(data_dir=tmp_path / "d"))  # base URL http://127.0.0.1:8000
    try:
        assert _stamp(app, SIMPLE)["List-Id"] == "Adieu demo <all.localhost>"
    finally:
        app.close()


def test_cfbl_headers_are_set_and_covered_by_the_signature(cfbl_mailer: Adieu) -> None:
    stamper = Stamper(cfbl_mailer)
    stamper.signer = DKIMSigner("example.com", [DKIMKey("rsa", RSA)])
    out = stamper.stamp(SIMPLE, "jane@example.org", topic="offers", campaign="c1")
    message = message_from_bytes(out, policy=policy.default)
    assert message.get_all("CFBL-Address") == ["fbl@reports.example.com; report=arf"]
    (feedback,) = message.get_all("CFBL-Feedback-ID") or []
    assert str(feedback) == _local_part(str(message["List-Unsubscribe"])).split("+")[1]
    assert cfbl_mailer.codec.open_compact(str(feedback)).names(
        cfbl_mailer.hasher.hash("jane@example.org")
    )
    assert verify(out) == [True]
    h = out.split(b"\r\n\r\n")[0].replace(b"\r\n\t", b" ").split(b"h=")[1].split(b";")[0]
    names = [n.strip() for n in h.split(b":")]
    for name in (b"list-id", b"cfbl-address", b"cfbl-feedback-id"):
        assert names.count(name) == 2, name  # present once, and over-signed
    for tampered in (
        out.replace(b"fbl@reports.example.com", b"fbl@evil.example"),
        out.replace(b"<offers.mail.example.net>", b"<other.mail.example.net>"),
        out.replace(b"\r\n\r\n", b"\r\nCFBL-Address: x@evil.example; report=arf\r\n\r\n", 1),
    ):
        assert verify(tampered) == [False]
    assert not [f for f in lint(out) if f.rule in ("RFC9477", "RFC2919")]
    # later copies come from the template: their own compact token, the same shape
    again = stamper.stamp(SIMPLE, "bob@example.org", topic="offers", campaign="c1")
    assert verify(again) == [True]
    other = message_from_bytes(again, policy=policy.default)
    assert cfbl_mailer.codec.open_compact(str(other["CFBL-Feedback-ID"])).names(
        cfbl_mailer.hasher.hash("bob@example.org")
    )


@pytest.mark.parametrize(
    ("author", "aligned"),
    [
        ("news@example.com", True),  # CFBL-Address below From's domain (§3.1.2)
        ("news@reports.example.com", True),  # the same domain (§3.1.1)
        ("news@mail.example.com", False),  # a sibling: a third party
        ("news@example.org", False),
        ("news@notexample.com", False),
    ],
)
def test_cfbl_only_when_aligned_with_from(
    cfbl_mailer: Adieu, author: str, aligned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    data = SIMPLE.replace(b"news@example.com", author.encode())
    out = Stamper(cfbl_mailer).stamp(data, "jane@example.org")
    message = message_from_bytes(out, policy=policy.default)
    assert ("CFBL-Address" in message) is aligned
    assert ("CFBL-Feedback-ID" in message) is aligned
    assert ("RFC 9477" in caplog.text) is not aligned
    # lint says the same of a message that carries one anyway
    forced = data.replace(
        b"Subject", b"CFBL-Address: fbl@reports.example.com; report=arf\r\nSubject"
    )
    warned = [f.message for f in lint(forced) if f.rule == "RFC9477"]
    assert bool(warned) is not aligned


def test_lint_warns_about_list_id_and_an_unsigned_cfbl_address() -> None:
    headers = (
        b"List-Unsubscribe: <https://x.example/u/T>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    )
    data = SIMPLE.replace(b"Subject", headers + b"Subject", 1)
    rules = {(f.rule, f.severity) for f in lint(data)}
    assert ("RFC2919", "warning") in rules
    signer = DKIMSigner("example.com", [DKIMKey("rsa", RSA)])
    with_id = data.replace(b"Subject", b"List-Id: News <news.example.com>\r\nSubject", 1)
    assert not [f for f in lint(signer.sign(with_id)) if f.rule in ("RFC2919", "RFC9477")]
    # a signature whose h= leaves CFBL-Address out (as a signer that does not know it)
    uncovered = with_id.replace(
        b"Subject",
        b"CFBL-Address: fbl@example.com; report=arf\r\n"
        b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s;"
        b" h=from:to:list-unsubscribe:list-unsubscribe-post; bh=x; b=y\r\nSubject",
        1,
    )
    assert [f.message for f in lint(uncovered) if f.rule == "RFC9477"] == [
        "No DKIM signature covers CFBL-Address (h=)."
    ]


_MARK = b"0123456789abcdef0123456789abcdef"


@settings(max_examples=150, deadline=None)
@given(
    _PIECES,
    _PIECES,
    st.lists(st.from_regex(rb"[!-~]{1,40}", fullmatch=True), min_size=1, max_size=3),
)
def test_a_prepared_message_signs_each_copy_as_signing_it_afresh(
    before: list[bytes], after: list[bytes], values: list[bytes]
) -> None:
    signer = DKIMSigner("example.com", [DKIMKey("rsa", RSA), DKIMKey("ed", ED)])
    markers = [_MARK[i:] + _MARK[:i] for i in range(len(values))]
    head = SIMPLE.partition(b"\r\n\r\n")[0]
    template = (
        head
        + b"\r\nList-Unsubscribe:  <https://x.example/u/"
        + b">,\r\n <mailto:u+".join(markers)
        + b"@x.example>\r\n\r\n"
        + b"".join(before)
        + b" ".join(markers)
        + b"".join(after)
    )
    prepared = signer.prepare(template, markers)
    copy = template
    for marker, value in zip(markers, values, strict=True):
        copy = copy.replace(marker, value)
    assert prepared.sign(values, now=1_800_000_000) == signer.sign(copy, now=1_800_000_000)
    with pytest.raises(ValueError):
        prepared.sign([b"with space"] * len(values))
