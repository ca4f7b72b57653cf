"""Email lint: an email's final HTML against caniemail's support data and the layout's rules.

Contract: `lint_html(html)` reads the HTML a reader receives (CSS already inlined) and
returns a Problem for every CSS property or HTML element a client in TARGETS does not
support where it is used, and for every broken structural rule: an image without a
width attribute, a button that is not a painted table cell, no ghost table holding the
column at 600 px in Outlook, no wrapper carrying lang, dir and the subject. It never
raises on odd HTML. What it reads inside `<!--[if mso]>` comments is Outlook's own.

The support data is caniemail's (github.com/hteumeuleu/caniemail, published as
https://www.caniemail.com/api/data.json), trimmed by `trim_caniemail` to the targeted
clients' latest test results and kept with its version in caniemail.json beside this
module; `digest templates update-caniemail` refreshes it. A partial result counts as
unsupported when its note says where it fails: with non-Google accounts, on the element
used, for the value or unit used, or without the `mso-` property the note asks for.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

DATA = Path(__file__).with_name("caniemail.json")

# The clients and platforms the newsletter is written for (caniemail's names).
TARGETS: dict[str, tuple[str, ...]] = {
    "apple-mail": ("macos", "ios"),
    "gmail": ("desktop-webmail", "ios", "android", "mobile-webmail"),
    "outlook": ("windows", "windows-mail", "macos", "outlook-com", "ios", "android"),
    "yahoo": ("desktop-webmail", "ios", "android"),
    "samsung-email": ("android",),
    "thunderbird": ("windows", "macos", "linux"),
}
# Properties whose absence costs only decoration, each with what the reader sees instead;
# they are not reported.
DEGRADES = {
    "border-radius": "square corners",
    "display": "images stand alone in their cells and buttons fill theirs without it",
    "text-decoration": "links keep the client's underline",
    "-ms-interpolation-mode": "Outlook's own image scaling",
}
# Elements that a client dropping them leaves the email whole without, and why.
ELEMENT_DEGRADES = {
    "style": "it holds only @media and data-detector rules; every other rule is inlined",
    "body": "the wrapper <div> repeats its background, lang and dir",
}
# Outlook for Windows reads these instead of the standard property on the same element.
_MSO_ALTERNATIVES = {"padding": "mso-padding-alt", "border": "mso-border-alt"}
_WORD_ENGINE = {("outlook", "windows"), ("outlook", "windows-mail")}
# An image's width and height attributes size it where CSS sizes are ignored.
_IMAGE_ATTRIBUTE_SIZES = {"width", "max-width", "height"}
_LONGHAND_FAMILIES = ("border", "padding", "margin", "background")
_ELEMENT_FEATURES = {
    **{f"h{n}": "html-h1-h6" for n in range(1, 7)},
    **{tag: "html-lists" for tag in ("ul", "ol", "li")},
    **{tag: "html-table" for tag in ("table", "thead", "tbody", "tfoot", "tr", "td", "th")},
    "b": "html-strong",
    "s": "html-strike",
}
_ELEMENT_NAMES = re.compile(r"`<(\w+)>`")
_TICKED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Problem:
    """One thing a targeted client will not show as written."""

    rule: str  # "css", "html", "image-width", "button-table", "ghost-table", "wrapper"
    message: str
    line: int  # in the HTML linted (1-based)
    tag: str = ""
    classes: tuple[str, ...] = ()
    prop: str = ""  # the CSS property, for "css"


@dataclass
class _Element:
    tag: str
    attrs: dict[str, str]
    line: int
    parent: _Element | None = None
    children: list[_Element] = field(default_factory=list)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.attrs.get("class", "").split())

    def describe(self) -> str:
        classes = "".join(f".{c}" for c in self.classes)
        return f"<{self.tag}{classes}>"

    def style(self) -> dict[str, str]:
        declarations: dict[str, str] = {}
        for item in self.attrs.get("style", "").split(";"):
            name, colon, value = item.partition(":")
            if colon and name.strip():
                declarations[name.strip().lower()] = value.strip()
        return declarations


class _Tree(HTMLParser):
    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self.comments: list[str] = []
        self._open: list[_Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self._open[-1] if self._open else None
        element = _Element(tag, {k: v or "" for k, v in attrs}, self.getpos()[0], parent)
        if parent is not None:
            parent.children.append(element)
        self.elements.append(element)
        if tag not in self._VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


@functools.cache
def support_data(path: Path = DATA) -> dict[str, Any]:
    """Return the trimmed caniemail data shipped with the package (see trim_caniemail)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def trim_caniemail(published: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Return caniemail's data.json (as published) cut to the latest result per target,
    with the notes those results cite, its version and where it came from."""
    nicenames = published.get("nicenames", {})
    features: dict[str, Any] = {}
    for feature in published["data"]:
        slug = str(feature["slug"])
        if not slug.startswith(("css-", "html-")):
            continue
        support: dict[str, str] = {}
        for client, platforms in TARGETS.items():
            for platform in platforms:
                results = (feature.get("stats", {}).get(client) or {}).get(platform)
                if isinstance(results, Mapping) and results:
                    support[f"{client}/{platform}"] = str(list(results.values())[-1]).strip()
        cited = {n for status in support.values() for n in re.findall(r"#(\d+)", status)}
        notes = {n: str(t) for n, t in (feature.get("notes_by_num") or {}).items() if str(n) in cited}
        features[slug] = {"title": feature.get("title", slug), "support": support, "notes": notes}
    return {
        "source": source,
        "api_version": published.get("api_version", ""),
        "last_update_date": str(published.get("last_update_date", "")),
        "family": {c: nicenames.get("family", {}).get(c, c) for c in TARGETS},
        "platform": dict(nicenames.get("platform", {})),
        "features": dict(sorted(features.items())),
    }


def lint_html(html: str, data: Mapping[str, Any] | None = None) -> list[Problem]:
    """Return the problems of an email's final HTML, in document order."""
    data = data if data is not None else support_data()
    tree = _Tree()
    tree.feed(html)
    tree.close()
    problems: list[Problem] = []
    for element in tree.elements:
        problems.extend(_element_support(element, data))
        problems.extend(_css_support(element, data))
        problems.extend(_structure(element))
    problems.extend(_document(tree))
    return sorted(problems, key=lambda p: p.line)


# -- caniemail -------------------------------------------------------------------------


def _failing(
    feature: Mapping[str, Any], element: _Element, prop: str = "", value: str = ""
) -> list[str]:
    """Return the "client/platform" keys where feature fails as used on element."""
    failing = []
    declarations = element.style()
    for target, status in feature["support"].items():
        kind = status[:1]
        if kind == "n":
            failing.append(target)
        elif kind == "a":
            notes = [feature["notes"].get(n, "") for n in re.findall(r"#(\d+)", status)]
            if any(_note_fails(note, element, prop, value, declarations) for note in notes):
                failing.append(target)
    return failing


def _note_fails(
    note: str, element: _Element, prop: str, value: str, declarations: Mapping[str, str]
) -> bool:
    lowered = note.lower()
    named = set(_ELEMENT_NAMES.findall(note))
    if "non google accounts" in lowered and "not supported" in lowered:
        return not _TICKED.search(note) or _value_named(note, value)
    if "only supported on table cells" in lowered:
        return element.tag not in ("td", "th")
    if lowered.startswith("partial. only supports") and value:
        # "Only supports `display:none` (but not on `<img>`)": the values named, nowhere else.
        allowed = {t.split(":")[-1].strip() for t in _TICKED.findall(note) if not t.startswith("<")}
        return value.split()[0] not in allowed or element.tag in named
    if lowered.startswith("partial. only") and named and " on " in lowered:
        return element.tag not in named
    if ("not supported on" in lowered or "unreliable if used on" in lowered) and named:
        return element.tag in named
    if "values set in `em`" in lowered:
        return bool(re.search(r"\d(\.\d+)?em\b", value))
    if "mso-line-height-rule" in lowered:
        return "mso-line-height-rule" not in declarations
    if ("value is not supported" in lowered or "values are not supported" in lowered) and value:
        return _value_named(note, value)
    return False


def _value_named(note: str, value: str) -> bool:
    words = set(value.lower().split())
    return any(t.strip().lower() in words for t in _TICKED.findall(note))


def _where(data: Mapping[str, Any], targets: Iterable[str]) -> str:
    by_client: dict[str, list[str]] = {}
    for target in targets:
        client, platform = target.split("/")
        by_client.setdefault(client, []).append(data["platform"].get(platform, platform))
    return "; ".join(
        f"{data['family'].get(client, client)} ({', '.join(platforms)})"
        for client, platforms in by_client.items()
    )


def _css_feature(prop: str, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    features = data["features"]
    family = prop.split("-")[0]
    slug = f"css-{prop}" if f"css-{prop}" in features else f"css-{family}"
    if slug != f"css-{prop}" and family not in _LONGHAND_FAMILIES:
        return None
    feature: Mapping[str, Any] | None = features.get(slug)
    return feature


def _css_support(element: _Element, data: Mapping[str, Any]) -> list[Problem]:
    if element.tag in ELEMENT_DEGRADES:
        return []
    problems = []
    declarations = element.style()
    for prop, value in declarations.items():
        if prop.startswith(("mso-", "-webkit-", "-ms-")) or prop in DEGRADES:
            continue
        feature = _css_feature(prop, data)
        if feature is None:
            continue
        failing = _failing(feature, element, prop, value.replace("!important", "").strip())
        family = prop.split("-")[0]
        if _MSO_ALTERNATIVES.get(family) in declarations:
            failing = [t for t in failing if tuple(t.split("/")) not in _WORD_ENGINE]
        if element.tag == "img" and prop in _IMAGE_ATTRIBUTE_SIZES and "width" in element.attrs:
            failing = [t for t in failing if tuple(t.split("/")) not in _WORD_ENGINE]
        if failing:
            problems.append(
                Problem(
                    "css",
                    f"{prop}: {value} on {element.describe()} is not supported by "
                    f"{_where(data, failing)}",
                    element.line,
                    element.tag,
                    element.classes,
                    prop,
                )
            )
    return problems


def _element_support(element: _Element, data: Mapping[str, Any]) -> list[Problem]:
    if element.tag in ELEMENT_DEGRADES:
        return []
    slug = _ELEMENT_FEATURES.get(element.tag, f"html-{element.tag}")
    feature = data["features"].get(slug)
    if feature is None:
        return []
    failing = [t for t, status in feature["support"].items() if status.startswith("n")]
    if not failing:
        return []
    return [
        Problem(
            "html",
            f"{element.describe()} is not supported by {_where(data, failing)}",
            element.line,
            element.tag,
            element.classes,
        )
    ]


# -- the layout's rules ------------------------------------------------------------------


def _structure(element: _Element) -> list[Problem]:
    if element.tag == "img" and not element.attrs.get("width", "").isdigit():
        return [
            Problem(
                "image-width",
                f"{element.describe()} has no width attribute: Outlook draws it at its natural "
                "size, however wide",
                element.line,
                element.tag,
                element.classes,
            )
        ]
    if element.tag == "a" and _looks_like_button(element):
        cell = element.parent
        if cell is None or cell.tag != "td" or "bgcolor" not in cell.attrs:
            return [
                Problem(
                    "button-table",
                    f"{element.describe()} is styled as a button but is not the link inside a "
                    "table cell with a bgcolor: in Outlook only its text is clickable, on a "
                    "text-high strip of colour",
                    element.line,
                    element.tag,
                    element.classes,
                )
            ]
    return []


def _looks_like_button(element: _Element) -> bool:
    # A painted link is a button; padding alone only enlarges a text link's tap target.
    style = element.style()
    return "background-color" in style or "background" in style


def _document(tree: _Tree) -> list[Problem]:
    problems = []
    ghost_open = any(
        re.match(r"\s*\[if mso\]>\s*<table\b[^>]*\bwidth=\"600\"", c) for c in tree.comments
    )
    ghost_close = any(re.search(r"</table>\s*<!\[endif\]\s*$", c) for c in tree.comments)
    if not (ghost_open and ghost_close):
        problems.append(
            Problem(
                "ghost-table",
                "no <!--[if mso]> table 600 px wide around the column: Outlook for Windows "
                "ignores max-width and fills the reading pane",
                1,
            )
        )
    body = next((e for e in tree.elements if e.tag == "body"), None)
    wrapper = body.children[0] if body is not None and body.children else None
    if wrapper is None or not (
        wrapper.attrs.get("role") == "article"
        and wrapper.attrs.get("lang")
        and wrapper.attrs.get("dir")
        and wrapper.attrs.get("aria-label")
    ):
        problems.append(
            Problem(
                "wrapper",
                "the body does not start with a wrapper carrying role=\"article\", lang, dir and "
                "aria-label (the subject): Gmail and Outlook.com drop them from <html>",
                body.line if body is not None else 1,
                "body",
            )
        )
    return problems
