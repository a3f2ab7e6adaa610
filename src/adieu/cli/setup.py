"""Setting Adieu up: ``topic``, ``db`` and ``keys``."""

from __future__ import annotations

import json
from typing import Any

import click

from adieu.cli.options import _table, _when, show
from adieu.cli.root import _Lazy, pass_app
from adieu.i18n import _
from adieu.ledger.records import TopicText
from adieu.times import iso_or_none


@click.group()
def topic() -> None:
    """Manage topics (what people can choose to receive)."""


@topic.command("add")
@click.argument("key")
@click.option("--name", required=True, help=_("Name shown to subscribers."))
@click.option("--description", default="", help=_("One sentence shown under the name."))
@click.option(
    "--opt-in/--opt-out",
    "default_opt_in",
    default=True,
    show_default=True,
    help=_("Whether people receive it until they say otherwise (--opt-out: only after they ask)."),
)
@click.option(
    "--name-in",
    "names_in",
    nargs=2,
    multiple=True,
    metavar="LANG NAME",
    help=_("The name in one language, e.g. --name-in ja ニュース (repeatable)."),
)
@click.option(
    "--description-in",
    "descriptions_in",
    nargs=2,
    multiple=True,
    metavar="LANG TEXT",
    help=_("The description in one language (repeatable; needs --name-in for it)."),
)
@pass_app
def topic_add(
    lazy: _Lazy,
    key: str,
    name: str,
    description: str,
    default_opt_in: bool,
    names_in: tuple[tuple[str, str], ...],
    descriptions_in: tuple[tuple[str, str], ...],
) -> None:
    """Add a topic."""
    translations = _translations(names_in, descriptions_in)
    created = lazy.app.ledger.add_topic(key, name, description, default_opt_in, translations)
    click.echo(_("Added topic {key}.").format(key=created.key))


@topic.command("translate")
@click.argument("key")
@click.argument("lang")
@click.option("--name", default=None, help=_("The name in this language."))
@click.option("--description", default="", help=_("The description in this language."))
@click.option("--remove", is_flag=True, help=_("Remove this language's name and description."))
@pass_app
def topic_translate(
    lazy: _Lazy, key: str, lang: str, name: str | None, description: str, remove: bool
) -> None:
    """Name and describe a topic in one language (pages in that language show it)."""
    from adieu.errors import InvalidInput

    if remove == (name is not None):
        raise InvalidInput(_("Give either --name or --remove."))
    text = None if remove else TopicText(name or "", description)
    lazy.app.ledger.update_topic(key, translations={lang: text})
    done = _("Removed {lang} from topic {key}.") if remove else _("Topic {key} in {lang} saved.")
    click.echo(done.format(key=key, lang=lang))


def _translations(
    names: tuple[tuple[str, str], ...], descriptions: tuple[tuple[str, str], ...]
) -> dict[str, TopicText]:
    from adieu.errors import InvalidInput

    described = dict(descriptions)
    named = dict(names)
    for lang in described:
        if lang not in named:
            raise InvalidInput(
                _("--description-in {lang} needs --name-in {lang} too.").format(lang=lang)
            )
    return {lang: TopicText(text, described.get(lang, "")) for lang, text in named.items()}


@topic.command("list")
@click.option("--json", "as_json", is_flag=True, help=_("Print JSON."))
@pass_app
def topic_list(lazy: _Lazy, as_json: bool) -> None:
    """List the topics (retired ones too: links already sent still name them)."""
    topics = lazy.app.ledger.topics(retired=True)
    if as_json:
        click.echo(json.dumps([_topic_json(t) for t in topics]))
        return
    if not topics:
        click.echo(_("No topics yet. Add one with: adieu topic add KEY --name NAME"))
        return
    table = _table(_("key"), _("name"), _("default"), _("description"), _("retired"))
    for t in topics:
        table.add_row(
            t.key,
            t.name,
            _("opt-in") if t.default_opt_in else _("opt-out"),
            t.description,
            _when(t.retired_at),
        )
    show(table)


def _topic_json(t: Any) -> dict[str, Any]:
    return {
        "key": t.key,
        "name": t.name,
        "description": t.description,
        "default_opt_in": t.default_opt_in,
        "retired_at": iso_or_none(t.retired_at),
        "translations": {
            k: {"name": v.name, "description": v.description} for k, v in t.translations.items()
        },
    }


@click.group()
def db() -> None:
    """The ledger database."""


@db.command("upgrade")
@pass_app
def db_upgrade(lazy: _Lazy) -> None:
    """Create or upgrade the database schema."""
    from adieu.ledger.database import describe, upgrade
    from adieu.service import Adieu

    app = Adieu(lazy.app.settings, migrate=False)
    try:
        ran = upgrade(app.engine)
    finally:
        app.close()
    where = describe(app.settings.sqlalchemy_url)
    click.echo((_("Upgraded {where}.") if ran else _("{where} is up to date.")).format(where=where))


@click.group("keys")
def keys_() -> None:
    """Token and hash keys."""


@keys_.command("dkim")
@click.option("--domain", required=True, help=_("The signing domain (d=)."))
@click.option("--selector", required=True, help=_("The selector (s=)."))
@click.option(
    "--ed25519", "ed25519_key", is_flag=True, help=_("An Ed25519 key instead of RSA-2048.")
)
@pass_app
def keys_dkim(lazy: _Lazy, domain: str, selector: str, ed25519_key: bool) -> None:
    """Create a DKIM key in the data dir and print the DNS TXT record to publish."""
    from adieu.mail import dkim

    if ed25519_key:
        path = dkim.key_path(lazy.app.settings.data_dir, selector, ed25519_key=True)
        name = f"{selector}-ed25519"
    else:
        path = dkim.key_path(lazy.app.settings.data_dir, selector)
        name = selector
    import os

    from adieu.keys import private_dir

    private_dir(path.parent)
    umask = os.umask(0o077)  # the key is never readable by others, not even for a moment
    try:
        key = dkim.create_key(path, ed25519_key=ed25519_key)
    finally:
        os.umask(umask)
    click.echo(_("Created {path}. Publish this DNS record:").format(path=path))
    click.echo(dkim.dns_record(domain, name, key))
    click.echo(
        _("Then set ADIEU_DKIM_DOMAIN={domain} and ADIEU_DKIM_SELECTOR={selector}.").format(
            domain=domain, selector=selector
        )
    )


@keys_.command("rotate")
@pass_app
def keys_rotate(lazy: _Lazy) -> None:
    """Add a token key; new links use it, old links keep working."""
    from adieu import keys

    ring = keys.rotate(lazy.app.settings.key_path)
    click.echo(
        _("Added token key {kid}; {count} keys open links.").format(
            kid=ring.current_id, count=len(ring.token_keys)
        )
    )
