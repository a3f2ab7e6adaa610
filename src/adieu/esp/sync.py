"""``adieu esp sync PROVIDER``: reconcile a provider's suppression lists with
the ledger, both ways.

Every page of the provider's lists is read (``providers.Provider.list_urls``);
what Adieu lacks is imported as ``adieu import`` would (one ``suppress``
event per new suppression, channel ``import``, the provider as the source,
so it is never pushed back to it); then what Adieu holds that the provider
lacks is counted and queued for it (``adieu.esp.push``), and the deliverer
takes it from there. A person Adieu knows only by the keyed hash (erased)
cannot be pushed: counted apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select

from adieu.addresses import mask
from adieu.errors import AdieuError, Unavailable
from adieu.esp.push import ADD, BOUNCE, COMPLAINT, UNSUBSCRIBE
from adieu.esp.push.providers import Entry, Page, Provider, Unreadable, pages
from adieu.esp.push.queue import Decision, PushQueue
from adieu.ledger import schema as t
from adieu.ledger.records import ImportResult, SuppressionRecord
from adieu.ledger.vocabulary import Channel, Reason
from adieu.scopes import ALL

if TYPE_CHECKING:
    from adieu.service import Adieu

Fetch = Callable[[str, dict[str, str]], tuple[int, bytes]]

_REASON = {BOUNCE: Reason.HARD_BOUNCE, COMPLAINT: Reason.COMPLAINT, UNSUBSCRIBE: Reason.UNSUBSCRIBE}
_KIND = {
    Reason.HARD_BOUNCE.value: BOUNCE,
    Reason.COMPLAINT.value: COMPLAINT,
}
_STRENGTH = {BOUNCE: 3, COMPLAINT: 2, UNSUBSCRIBE: 1}


@dataclass
class SyncReport:
    provider: str
    read: int = 0
    imported: ImportResult = field(default_factory=ImportResult)
    #: Entries for a topic Adieu does not know (not imported).
    unknown_topics: int = 0
    #: Held by Adieu, not at the provider: queued for it.
    missing: int = 0
    #: Of those, known to Adieu only by their keyed hash: cannot be sent.
    cannot_push: int = 0
    #: A few of the missing ones, masked.
    examples: list[str] = field(default_factory=list)


def http_fetch(timeout: float = 30.0) -> tuple[Fetch, Callable[[], None]]:
    """A GET through one kept-alive client; and its close."""
    import httpx

    from adieu import __version__

    client = httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": f"Adieu/{__version__} (suppressions)"},
    )

    def fetch(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        try:
            response = client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"The provider could not be reached ({type(exc).__name__}); nothing was imported."
            ) from None
        return response.status_code, response.content

    return fetch, client.close


def read(provider: Provider, fetch: Fetch) -> Iterator[Page]:
    """Every page of every list; a provider's refusal or an answer of another
    shape is a ``Unavailable`` (nothing imported)."""
    try:
        for _, page in pages(provider, fetch):
            yield page
    except Unreadable as exc:
        raise Unavailable(
            f"{provider.name} did not give its suppression lists ({exc}); nothing was imported."
        ) from None


def reconcile(adieu: Adieu, provider: Provider, entries: Iterable[Entry]) -> SyncReport:
    """Import what ``entries`` (the provider's lists, read in full) hold that
    Adieu lacks; queue for the provider what Adieu holds that it lacks."""
    ledger = adieu.ledger
    report = SyncReport(provider.name)
    everywhere: set[str] = set()  # at the provider for all mail
    scoped: set[tuple[str, str]] = set()
    records: list[SuppressionRecord] = []
    known_scopes: dict[str, bool] = {}
    for entry in entries:
        report.read += 1
        if entry.scope == ALL:
            everywhere.add(entry.address)
        else:
            scoped.add((entry.address, entry.scope))
            if entry.scope not in known_scopes:
                try:
                    ledger.check_scope(entry.scope)
                    known_scopes[entry.scope] = True
                except AdieuError:
                    known_scopes[entry.scope] = False
            if not known_scopes[entry.scope]:
                report.unknown_topics += 1
                continue
        records.append(SuppressionRecord(entry.address, None, entry.scope, _REASON[entry.reason]))
    fresh, already = _not_held(adieu, records)
    report.imported = ledger.import_suppressions(
        fresh,
        channel=Channel.IMPORT,
        source=provider.name,
        details={"by": "adieu esp sync"},
    )
    report.imported.already += already
    # What Adieu holds (after the import), strongest reason per (address, scope).
    c, s = t.contacts, t.suppressions
    wanted: dict[tuple[int, str], tuple[str | None, str, int | None]] = {}
    query = select(c.c.id, c.c.address, s.c.scope, s.c.reason, s.c.event_id).join(
        s, s.c.contact_id == c.c.id
    )
    with adieu.engine.connect() as conn:
        for row in conn.execution_options(yield_per=5000).execute(query):
            if not provider.takes(row.scope):
                continue
            kind = _KIND.get(row.reason, UNSUBSCRIBE)
            scope = ALL if kind != UNSUBSCRIBE else row.scope
            key = (int(row.id), scope)
            held = wanted.get(key)
            if held is None or _STRENGTH[kind] > _STRENGTH[held[1]]:
                wanted[key] = (row.address, kind, row.event_id)
    decisions: list[Decision] = []
    for (contact_id, scope), (address, kind, event_id) in wanted.items():
        if address is not None and (
            address in everywhere or (scope != ALL and (address, scope) in scoped)
        ):
            continue
        report.missing += 1
        if address is None:
            report.cannot_push += 1
            continue
        if len(report.examples) < 10:
            report.examples.append(mask(address))
        decisions.append(Decision(provider.name, contact_id, event_id, ADD, kind, scope, address))
    PushQueue(adieu.engine, ledger.now).add(decisions)
    return report


def _not_held(
    adieu: Adieu, records: list[SuppressionRecord]
) -> tuple[list[SuppressionRecord], int]:
    """The records whose address is not already held for the scope (or for
    all mail) for some reason. Most providers keep no reason Adieu can read
    back (a hard bounce Adieu pushed returns as an exclusion, an
    unsubscribe): imported beside the bounce, it would outlive the bounce's
    lift. With them, how many were left out (already there)."""
    by_scope: dict[str, list[SuppressionRecord]] = {}
    for record in records:
        by_scope.setdefault(record.scope, []).append(record)
    hasher, ledger = adieu.hasher, adieu.ledger
    kept: list[SuppressionRecord] = []
    held = 0
    for scope, group in by_scope.items():
        digests = {hasher.hash(r.address or ""): r for r in group}
        states = ledger.send_states(list(digests), None if scope == ALL else scope)
        for digest, record in digests.items():
            state = states.get(digest)
            if state is not None and any(s.scope in (ALL, scope) for s in state.suppressions):
                held += 1
            else:
                kept.append(record)
    return kept, held
