"""Engagement: which links of an issue its readers clicked, humans and machines apart.

Contract: a click is recorded as a ClickEvent (by digest.engine.clicks, in batches) and
lives seconds: `settle` claims the events of each message whose first pending click is
SETTLE_SECONDS old, with one guarded DELETE … RETURNING (two settlers never count one
event twice), tells machine from human by the rules in MACHINE_RULES, and adds them to
the issue's aggregates: ClickTally (per link, hour after the send and kind) and
ClickReach (readers who clicked, per section). No row names a reader unless the
newsletter keeps per-reader engagement (ReaderClick); counting each reader once per link
keeps only keyed hashes (ClickSeen) that `erase_reader` deletes with the reader's rows.
`issue_report` reads the figures the issue page, the CSV, the API and the CLI show.
Functions take a Session and an injectable `now`, flush, and never commit.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    ClickEvent,
    ClickReach,
    ClickSeen,
    ClickTally,
    Delivery,
    DeliveryState,
    Issue,
    IssueLink,
    Newsletter,
    Post,
    ReaderClick,
    Section,
    Subscriber,
    Subscription,
    SubscriptionSection,
)
from digest.core.tokens import keyed_hasher
from digest.domain.deliveries import upsert_insert
from digest.mail.tracking import OPEN_LINK, LinkTable

SETTLE_SECONDS = 10  # a message's clicks wait this long, so a burst is seen whole
EARLY_SECONDS = 30  # a click this soon after the message was handed over is a scanner's
BURST_SECONDS = 5  # this many distinct links of one message within …
BURST_LINKS = 3  # … this window: every link clicked at once is a scanner
TIMELINE_HOURS = 72
TOP_LINKS = 10
HUMAN = "human"
_SEEN = "click-seen"
# Apple's Mail Privacy Protection fetches images through Apple's own network (17.0.0.0/8,
# Apple's since 1990) with a bare "Mozilla/5.0" user agent.
_APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)
_APPLE_AGENT = "Mozilla/5.0"

MACHINE_RULES = {
    "head": "a HEAD request (link checkers ask whether a link works without opening it)",
    "scanner": "a user agent of a known link scanner, mail gateway or prefetcher, or none at all",
    "apple": "Apple's Mail Privacy Protection proxy (Apple's network 17.0.0.0/8 or its bare "
    "\"Mozilla/5.0\" user agent)",
    "early": f"within {EARLY_SECONDS} seconds of the message being handed to the reader's server",
    "burst": f"{BURST_LINKS} or more different links of one message within {BURST_SECONDS} seconds",
}


@cache
def _agents() -> tuple[str, ...]:
    lines = (Path(__file__).with_name("machine_agents.txt")).read_text("utf-8").splitlines()
    return tuple(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def request_machine(method: str, user_agent: str, ip: str | None, link: int) -> str | None:
    """Return which machine rule a click's request alone matches (None: maybe a human)."""
    if method == "HEAD":
        return "head"
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        address = None
    if user_agent.strip() == _APPLE_AGENT or (
        address is not None and any(address in net for net in _APPLE_NETWORKS)
    ):
        return "apple"
    agent = user_agent.lower()
    if not agent.strip() or any(fragment in agent for fragment in _agents()):
        return "scanner"
    return None


def save_links(session: Session, issue_id: int, table: LinkTable) -> None:
    """Store the issue's links its tokens name (those not stored yet; indices never move)."""
    stored = set(session.scalars(select(IssueLink.idx).where(IssueLink.issue_id == issue_id)))
    rows = [
        {"issue_id": issue_id, "idx": link.index, "url": link.url, "post_id": link.post_id,
         "section_id": link.section_id}
        for link in table.links
        if link.index not in stored
    ]
    if rows:
        # Two senders rendering the issue for the first time at once store the same rows:
        # the second's are already there (an index always names the same link).
        session.execute(upsert_insert(session)(IssueLink.__table__).on_conflict_do_nothing(), rows)


def link_targets(session: Session, issue_id: int) -> dict[int, str]:
    """Return the issue's stored links by index."""
    return dict(
        session.execute(
            select(IssueLink.idx, IssueLink.url).where(IssueLink.issue_id == issue_id)
        ).all()
    )


def record_events(session: Session, events: Sequence[Mapping[str, Any]]) -> None:
    """Insert recorded clicks (issue_id, delivery_id, link, at, machine) in one statement."""
    if events:
        session.execute(insert(ClickEvent), list(events))


@dataclass(frozen=True)
class _Event:
    issue_id: int
    delivery_id: int
    link: int
    at: dt.datetime
    machine: str | None


def _bursts(events: list[_Event]) -> set[int]:
    """Return the positions of a message's clicks that belong to a burst."""
    clicks = sorted(
        (i for i, e in enumerate(events) if e.link != OPEN_LINK), key=lambda i: events[i].at
    )
    found: set[int] = set()
    window = dt.timedelta(seconds=BURST_SECONDS)
    for start in range(len(clicks)):
        inside = [i for i in clicks[start:] if events[i].at - events[clicks[start]].at <= window]
        if len({events[i].link for i in inside}) >= BURST_LINKS:
            found.update(inside)
    return found


def _upsert(session: Session, table: Any, keys: dict[str, Any], adds: dict[str, int]) -> None:
    statement = upsert_insert(session)(table).values(**keys, **adds)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: getattr(table.c, name) + statement.excluded[name] for name in adds},
        )
    )


def settle(session: Session, config: Mapping[str, Any], now: dt.datetime | None = None) -> int:
    """Classify and count the clicks ready to settle (see the module doc); return how many."""
    now = now or utcnow()
    ready = (
        select(ClickEvent.delivery_id)
        .group_by(ClickEvent.delivery_id)
        .having(func.min(ClickEvent.at) <= now - dt.timedelta(seconds=SETTLE_SECONDS))
    )
    claimed = [
        _Event(*row)
        for row in session.execute(
            delete(ClickEvent)
            .where(ClickEvent.delivery_id.in_(ready))
            .returning(ClickEvent.issue_id, ClickEvent.delivery_id, ClickEvent.link,
                       ClickEvent.at, ClickEvent.machine)
        )
    ]
    if not claimed:
        return 0
    by_delivery: dict[int, list[_Event]] = defaultdict(list)
    for event in claimed:
        by_delivery[event.delivery_id].append(event)
    sent = dict(
        session.execute(
            select(Delivery.id, Delivery.sent_at).where(Delivery.id.in_(list(by_delivery)))
        ).all()
    )
    issue_ids = {e.issue_id for e in claimed}
    issues = {
        row.id: row
        for row in session.execute(
            select(Issue.id, Issue.started_at, Issue.sent_at, Newsletter.keep_reader_engagement)
            .join(Newsletter, Newsletter.id == Issue.newsletter_id)
            .where(Issue.id.in_(issue_ids))
        )
    }
    sections = {
        (issue_id, idx): section_id
        for issue_id, idx, section_id in session.execute(
            select(IssueLink.issue_id, IssueLink.idx, IssueLink.section_id).where(
                IssueLink.issue_id.in_(issue_ids)
            )
        ).all()
    }
    hash_of = keyed_hasher(config["SECRET_KEY"], _SEEN)
    tallies: dict[tuple[int, int, int, str], list[int]] = defaultdict(lambda: [0, 0])
    reach: dict[tuple[int, int], int] = defaultdict(int)
    kinds: list[tuple[_Event, str, int]] = []
    for delivery_id, events in by_delivery.items():
        burst = _bursts(events)
        sent_at = sent.get(delivery_id)
        for position, event in enumerate(events):
            issue = issues.get(event.issue_id)
            if issue is None:
                continue
            kind = event.machine or (
                "early" if sent_at is not None
                and (event.at - sent_at).total_seconds() < EARLY_SECONDS
                else "burst" if position in burst else HUMAN
            )
            base = issue.started_at or issue.sent_at or event.at
            hour = max(0, math.floor((event.at - base).total_seconds() / 3600))
            kinds.append((event, kind, hour))
    scoped = [
        (event, kind, hour, _scope_keys(hash_of, event, sections.get((event.issue_id, event.link))))
        for event, kind, hour in kinds
    ]
    wanted = {(e.issue_id, key) for e, kind, _h, keys in scoped if kind == HUMAN for _s, key in keys}
    seen: set[tuple[int, str]] = set()
    for issue_id in issue_ids:
        keys = [key for i, key in wanted if i == issue_id]
        for start in range(0, len(keys), 500):
            seen.update(
                (issue_id, key)
                for key in session.scalars(
                    select(ClickSeen.key).where(
                        ClickSeen.issue_id == issue_id, ClickSeen.key.in_(keys[start : start + 500])
                    )
                )
            )
    new = wanted - seen
    if new:
        session.execute(insert(ClickSeen), [{"issue_id": i, "key": k} for i, k in sorted(new)])
    for event, kind, hour, scope_keys in scoped:
        tally = tallies[(event.issue_id, event.link, hour, kind)]
        tally[0] += 1
        if kind != HUMAN:
            continue
        for (scope, value), key in scope_keys:
            if (event.issue_id, key) in new:
                new.discard((event.issue_id, key))
                if scope == "link":
                    tally[1] += 1
                else:
                    reach[(event.issue_id, value)] += 1
    for (issue_id, link, hour, kind), (clicks, uniques) in tallies.items():
        _upsert(session, ClickTally.__table__,
                {"issue_id": issue_id, "link": link, "hour": hour, "kind": kind},
                {"clicks": clicks, "uniques": uniques})
    for (issue_id, section_id), readers in reach.items():
        _upsert(session, ClickReach.__table__, {"issue_id": issue_id, "section_id": section_id},
                {"readers": readers})
    kept = [
        {"delivery_id": e.delivery_id, "link": e.link, "at": e.at,
         "machine": None if kind == HUMAN else kind}
        for e, kind, _hour in kinds
        if issues[e.issue_id].keep_reader_engagement and e.delivery_id in sent
    ]
    if kept:
        session.execute(insert(ReaderClick), kept)
    session.flush()
    return len(claimed)


def _scope_keys(
    hash_of: Any, event: _Event, section: int | None
) -> list[tuple[tuple[str, int], str]]:
    """Return what a human click counts once (its link; the issue and its section for a
    click, not an open), each with its keyed hash."""
    scopes = [("link", event.link)]
    if event.link != OPEN_LINK:
        scopes += [("reach", 0)] + ([("reach", section)] if section else [])
    return [
        (scope, hash_of(f"{event.issue_id}:{event.delivery_id}:{scope[0]}:{scope[1]}")[:32])
        for scope in scopes
    ]


def set_tracking(subscription: Subscription, *, allowed: bool) -> None:
    """Record a reader's choice: their next emails get counted links, or plain ones."""
    subscription.no_tracking = not allowed


def erase_reader(session: Session, config: Mapping[str, Any], subscriber_id: int) -> None:
    """Delete what engagement knows of one reader: their clicks, kept or waiting, and the
    hashes that counted them once (the aggregates keep their anonymous counts)."""
    rows = session.execute(
        select(Delivery.id, Delivery.issue_id).where(Delivery.subscriber_id == subscriber_id)
    ).all()
    if not rows:
        return
    ids = [delivery_id for delivery_id, _ in rows]
    session.execute(delete(ReaderClick).where(ReaderClick.delivery_id.in_(ids)))
    session.execute(delete(ClickEvent).where(ClickEvent.delivery_id.in_(ids)))
    hash_of = keyed_hasher(config["SECRET_KEY"], _SEEN)
    for delivery_id, issue_id in rows:
        links = list(session.scalars(select(IssueLink.idx).where(IssueLink.issue_id == issue_id)))
        sections = {s for s in session.scalars(
            select(IssueLink.section_id).where(IssueLink.issue_id == issue_id)) if s}
        scopes = [("link", i) for i in [*links, OPEN_LINK]] + [("reach", s) for s in [0, *sections]]
        keys = [hash_of(f"{issue_id}:{delivery_id}:{a}:{b}")[:32] for a, b in scopes]
        session.execute(
            delete(ClickSeen).where(ClickSeen.issue_id == issue_id, ClickSeen.key.in_(keys))
        )
    session.flush()


@dataclass(frozen=True)
class LinkFigures:
    """One link's clicks: unique human clicks, all human clicks, machine clicks."""

    index: int
    url: str
    post_id: int | None
    post_title: str | None
    section: str | None
    unique_human: int
    human: int
    machine: int


@dataclass(frozen=True)
class SectionFigures:
    """Readers who clicked in a section against the readers whose message had it."""

    section_id: int
    name: str
    readers_clicked: int
    readers_got: int

    @property
    def rate(self) -> float | None:
        """Return the share of readers who got the section and clicked in it."""
        return self.readers_clicked / self.readers_got if self.readers_got else None


@dataclass(frozen=True)
class HourFigures:
    """Clicks in one hour after the send began."""

    hour: int
    human: int
    machine: int


@dataclass(frozen=True)
class ReaderFigures:
    """Who clicked (kept only where the newsletter keeps per-reader engagement)."""

    email: str
    links: tuple[int, ...]


@dataclass(frozen=True)
class IssueEngagement:
    """What an issue's readers did, as the report shows it."""

    issue_id: int
    subject: str
    tracks_clicks: bool
    tracks_opens: bool
    delivered: int
    readers_clicked: int
    human_clicks: int
    machine_clicks: int
    machine_by_rule: dict[str, int]
    links: list[LinkFigures]
    sections: list[SectionFigures]
    timeline: list[HourFigures]
    opens: int | None  # unique human opens, Apple's proxy excluded; None: opens not counted
    machine_opens: int | None
    readers: list[ReaderFigures] | None  # None: per-reader engagement is not kept
    rules: dict[str, str] = field(default_factory=lambda: dict(MACHINE_RULES))

    @property
    def click_rate(self) -> float | None:
        """Return the share of delivered readers who clicked at least once (humans)."""
        return self.readers_clicked / self.delivered if self.delivered else None

    @property
    def machine_share(self) -> float | None:
        """Return the share of all clicks that were machines'."""
        total = self.human_clicks + self.machine_clicks
        return self.machine_clicks / total if total else None

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready values (the API's and `--json`'s shape)."""
        data = asdict(self)
        data["click_rate"] = self.click_rate
        data["machine_share"] = self.machine_share
        for section, figures in zip(data["sections"], self.sections, strict=True):
            section["rate"] = figures.rate
        return data


def record_reach(session: Session, issue: Issue) -> None:
    """Store how many readers had each section in their message, as the issue finishes
    sending: a reader who changes their sections later leaves the issue's figures be."""
    _delivered, got = _readers_per_section(session, issue)
    dialect_insert = upsert_insert(session)
    for section in issue.newsletter.sections:
        statement = dialect_insert(ClickReach.__table__).values(
            issue_id=issue.id, section_id=section.id, readers=0, readers_got=got[section.id]
        )
        session.execute(statement.on_conflict_do_update(
            index_elements=["issue_id", "section_id"],
            set_={"readers_got": statement.excluded.readers_got},
        ))
    session.flush()


def _readers_per_section(session: Session, issue: Issue) -> tuple[int, dict[int, int]]:
    """Return how many readers the issue was delivered to, and how many of them had each
    section in their message (a reader who chose no sections gets every one): as recorded
    when the issue finished sending, or else as the readers' sections are now."""
    delivered = session.scalar(
        select(func.count()).where(Delivery.issue_id == issue.id, Delivery.state == DeliveryState.SENT)
    ) or 0
    recorded = {
        section_id: got
        for section_id, got in session.execute(
            select(ClickReach.section_id, ClickReach.readers_got).where(ClickReach.issue_id == issue.id)
        ).all()
        if got is not None
    }
    if recorded:
        return delivered, defaultdict(int, recorded)
    sent_subscriptions = (
        select(Subscription.id)
        .join(Delivery, Delivery.subscriber_id == Subscription.subscriber_id)
        .where(Delivery.issue_id == issue.id, Delivery.state == DeliveryState.SENT,
               Subscription.newsletter_id == issue.newsletter_id)
    )
    choosing = session.scalar(
        select(func.count(func.distinct(SubscriptionSection.subscription_id))).where(
            SubscriptionSection.subscription_id.in_(sent_subscriptions)
        )
    ) or 0
    per_section = dict(
        session.execute(
            select(SubscriptionSection.section_id, func.count())
            .where(SubscriptionSection.subscription_id.in_(sent_subscriptions))
            .group_by(SubscriptionSection.section_id)
        ).all()
    )
    everyone = delivered - choosing
    return delivered, defaultdict(lambda: everyone, {k: v + everyone for k, v in per_section.items()})


def issue_report(session: Session, issue: Issue) -> IssueEngagement:
    """Return the engagement figures of one issue."""
    newsletter = issue.newsletter
    delivered, got = _readers_per_section(session, issue)
    tallies = session.execute(
        select(ClickTally.link, ClickTally.hour, ClickTally.kind, ClickTally.clicks, ClickTally.uniques)
        .where(ClickTally.issue_id == issue.id)
    ).all()
    per_link: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    per_hour: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    by_rule: dict[str, int] = dict.fromkeys(MACHINE_RULES, 0)
    opens = machine_opens = 0
    for link, hour, kind, clicks, uniques in tallies:
        human = kind == HUMAN
        if link == OPEN_LINK:
            if human:
                opens += uniques
            elif kind != "apple":
                machine_opens += clicks
            continue
        figures = per_link[link]
        figures[0 if human else 2] += clicks
        figures[1] += uniques
        if hour < TIMELINE_HOURS:
            per_hour[hour][0 if human else 1] += clicks
        if not human:
            by_rule[kind] = by_rule.get(kind, 0) + clicks
    links = session.execute(
        select(IssueLink.idx, IssueLink.url, IssueLink.post_id, Post.title, Section.name)
        .outerjoin(Post, Post.id == IssueLink.post_id)
        .outerjoin(Section, Section.id == IssueLink.section_id)
        .where(IssueLink.issue_id == issue.id)
    ).all()
    link_rows = sorted(
        (
            LinkFigures(idx, url, post_id, title, section, per_link[idx][1], per_link[idx][0],
                        per_link[idx][2])
            for idx, url, post_id, title, section in links
        ),
        key=lambda f: (-f.unique_human, -f.human, f.index),
    )
    reach = dict(
        session.execute(
            select(ClickReach.section_id, ClickReach.readers).where(ClickReach.issue_id == issue.id)
        ).all()
    )
    section_ids = {idx_section for idx_section in session.scalars(
        select(IssueLink.section_id).where(IssueLink.issue_id == issue.id)) if idx_section}
    sections = [
        SectionFigures(section.id, section.name, reach.get(section.id, 0), got[section.id])
        for section in newsletter.sections
        if section.id in section_ids
    ]
    readers = None
    if newsletter.keep_reader_engagement:
        found: dict[str, set[int]] = defaultdict(set)
        for email, link in session.execute(
            select(Subscriber.email, ReaderClick.link)
            .join(Delivery, Delivery.id == ReaderClick.delivery_id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.issue_id == issue.id, ReaderClick.machine.is_(None),
                   ReaderClick.link != OPEN_LINK)
        ).all():
            found[email].add(link)
        readers = [ReaderFigures(email, tuple(sorted(found[email]))) for email in sorted(found)]
    return IssueEngagement(
        issue_id=issue.id,
        subject=issue.subject,
        tracks_clicks=newsletter.track_clicks,
        tracks_opens=newsletter.track_opens,
        delivered=delivered,
        readers_clicked=reach.get(0, 0),
        human_clicks=sum(f[0] for f in per_link.values()),
        machine_clicks=sum(f[2] for f in per_link.values()),
        machine_by_rule=by_rule,
        links=link_rows,
        sections=sections,
        timeline=[HourFigures(h, *per_hour[h]) if h in per_hour else HourFigures(h, 0, 0)
                  for h in range(TIMELINE_HOURS)],
        opens=opens if newsletter.track_opens or opens else None,
        machine_opens=machine_opens if newsletter.track_opens or opens else None,
        readers=readers,
    )


CSV_COLUMNS = ("link", "url", "post", "section", "unique_human_clicks", "human_clicks",
               "machine_clicks")


def report_csv(report: IssueEngagement) -> str:
    """Return the report's links as CSV, one row a link, the issue's totals first."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerow(["all", "", "", "", report.readers_clicked, report.human_clicks,
                     report.machine_clicks])
    for link in report.links:
        writer.writerow([link.index, _cell(link.url), _cell(link.post_title or ""),
                         _cell(link.section or ""), link.unique_human, link.human, link.machine])
    return out.getvalue()


def _cell(value: str) -> str:
    # A spreadsheet runs a cell that starts with = + - @ as a formula.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@dataclass(frozen=True)
class IssueTrend:
    """One sent issue's headline figures, for the dashboard's trend."""

    issue_id: int
    subject: str
    delivered: int
    readers_clicked: int
    machine_clicks: int
    human_clicks: int


def trend(session: Session, newsletter: Newsletter, limit: int = 12) -> list[IssueTrend]:
    """Return the last sent issues' figures, oldest first."""
    issues = list(session.scalars(
        select(Issue).where(Issue.newsletter_id == newsletter.id, Issue.started_at.is_not(None))
        .order_by(Issue.started_at.desc()).limit(limit)
    ))
    ids = [i.id for i in issues]
    delivered = dict(session.execute(
        select(Delivery.issue_id, func.count()).where(
            Delivery.issue_id.in_(ids), Delivery.state == DeliveryState.SENT)
        .group_by(Delivery.issue_id)).all())
    readers = dict(session.execute(
        select(ClickReach.issue_id, ClickReach.readers).where(
            ClickReach.issue_id.in_(ids), ClickReach.section_id == 0)).all())
    clicks: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for issue_id, kind, count in session.execute(
        select(ClickTally.issue_id, ClickTally.kind, func.sum(ClickTally.clicks))
        .where(ClickTally.issue_id.in_(ids), ClickTally.link != OPEN_LINK)
        .group_by(ClickTally.issue_id, ClickTally.kind)
    ).all():
        clicks[issue_id][0 if kind == HUMAN else 1] += int(count or 0)
    return [
        IssueTrend(i.id, i.subject, delivered.get(i.id, 0), readers.get(i.id, 0),
                   clicks[i.id][1], clicks[i.id][0])
        for i in reversed(issues)
    ]


@dataclass(frozen=True)
class PostClicks:
    """A post's unique human clicks in one issue (or in all, for the all-time list)."""

    post_id: int
    title: str
    issue_id: int | None
    subject: str | None
    unique_human: int


def top_posts(session: Session, newsletter: Newsletter, limit: int = 10) -> list[PostClicks]:
    """Return the newsletter's posts with the most unique human clicks, of all time."""
    rows = session.execute(
        select(Post.id, Post.title, func.sum(ClickTally.uniques).label("clicks"))
        .join(IssueLink, IssueLink.post_id == Post.id)
        .join(ClickTally, (ClickTally.issue_id == IssueLink.issue_id) & (ClickTally.link == IssueLink.idx))
        .where(Post.newsletter_id == newsletter.id, ClickTally.kind == HUMAN)
        .group_by(Post.id, Post.title)
        .order_by(func.sum(ClickTally.uniques).desc(), Post.id)
        .limit(limit)
    ).all()
    return [PostClicks(pid, title, None, None, int(clicks or 0)) for pid, title, clicks in rows]


def post_clicks(session: Session, post: Post) -> list[PostClicks]:
    """Return a post's unique human clicks in each issue that carried it."""
    rows = session.execute(
        select(Issue.id, Issue.subject, func.sum(ClickTally.uniques))
        .join(IssueLink, IssueLink.issue_id == Issue.id)
        .join(ClickTally, (ClickTally.issue_id == IssueLink.issue_id) & (ClickTally.link == IssueLink.idx))
        .where(IssueLink.post_id == post.id, ClickTally.kind == HUMAN)
        .group_by(Issue.id, Issue.subject)
        .order_by(Issue.id)
    ).all()
    return [PostClicks(post.id, post.title, iid, subject, int(n or 0)) for iid, subject, n in rows]


def sections_by_performance(session: Session, newsletter: Newsletter, issues: int = 4) -> list[tuple[str, float]]:
    """Return the newsletter's sections by their click rate over the last issues, best
    first (a suggestion for ordering the next issue; nothing is reordered by it)."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in trend(session, newsletter, issues):
        issue = session.get(Issue, item.issue_id)
        if issue is None:
            continue
        for figures in issue_report(session, issue).sections:
            totals[figures.name][0] += figures.readers_clicked
            totals[figures.name][1] += figures.readers_got
    ranked = [(name, clicked / got) for name, (clicked, got) in totals.items() if got]
    return sorted(ranked, key=lambda pair: -pair[1])
