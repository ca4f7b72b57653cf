"""Sources and the inbox: add, list and remove feeds; save links; accept or dismiss items."""

from __future__ import annotations

from flask import Response, abort, current_app, jsonify, url_for

from digest.core.extensions import db_session
from digest.core.models import InboxItem, InboxState, Source
from digest.core.validation import URL_MAX
from digest.domain import inbox, posts, sources
from digest.web.api import ID, editor_bp, newsletter_or_404, shapes
from digest.web.api.inputs import Body, Field, Param, json_body, query
from digest.web.api.spec import operation

NEW_SOURCE = Body("NewSource", "A feed to read into the inbox for one section.", {
    "url": Field("string", "The feed's address: RSS, Atom or JSON Feed (409 if it is already "
                           "a source).", required=True, max_length=URL_MAX, fmt="http-url", blank=False,
                 example="https://blog.example.org/feed.xml"),
    "section": Field("string", "Slug of the section its items go to (409 if there is none).",
                     required=True, max_length=64, blank=False, example="news"),
})
SAVED_LINK = Body("SavedLink", "A page to put in the inbox; without a title the page's own "
                               "(og:title, <title>) and description are read from it.", {
    "url": Field("string", "The page's address.", required=True, max_length=URL_MAX,
                 fmt="http-url", blank=False, example="https://example.org/article"),
    "title": Field("string", "The title to show, if known.", max_length=2000),
    "description": Field("string", "A description to show, if known.", max_length=20_000,
                         multiline=True),
})
ACCEPT = Body("AcceptItem", "How to make the draft post; both fields are optional.", {
    "summary": Field("string", "The post's summary (default: the item's).",
                     max_length=posts.SUMMARY_MAX, multiline=True),
    "section_id": Field("integer", "The post's section (default: the source's; 409 if it is "
                                   "not one of the newsletter's)."),
}, optional=True)
INBOX = [
    Param("state", "string", "Items in this state (default new).",
          choices=[s.value for s in InboxState], default="new"),
    Param("page", "integer", "Page number (25 items a page).", minimum=1, default=1),
]


def _source(source_id: int) -> Source:
    found = sources.get_source(db_session(), source_id)
    if found is None:
        abort(404, f"There is no source {source_id}.")
    return found


def _item(item_id: int) -> InboxItem:
    found = inbox.get_item(db_session(), item_id)
    if found is None:
        abort(404, f"There is no inbox item {item_id}.")
    return found


@editor_bp.get("/newsletters/<newsletter>/sources")
@operation("GET", "List sources", tag="sources", responses={200: "SourceList"})
def sources_list(newsletter: str) -> Response:
    """The newsletter's sources with their health."""
    item = newsletter_or_404(newsletter)
    return jsonify({"sources": [shapes.source(s) for s in sources.list_sources(db_session(), item)]})


@editor_bp.post("/newsletters/<newsletter>/sources")
@operation("POST", "Add a source", tag="sources", body=NEW_SOURCE, errors=[409],
           responses={201: "Source"},
           description="The clock reads it at its next run, then every DIGEST_FEED_INTERVAL_SECONDS. "
                       "409 if the section does not exist or the feed is already a source.")
def source_create(newsletter: str) -> Response:
    """Add a feed for a section."""
    item = newsletter_or_404(newsletter)
    values = json_body(NEW_SOURCE)
    dbs = db_session()
    source = sources.add_source(dbs, item, values["url"], values["section"])
    dbs.commit()
    response = jsonify(shapes.source(source))
    response.status_code = 201
    response.headers["Location"] = url_for(".source_get", source_id=source.id)
    return response


@editor_bp.get(f"/sources/<{ID}:source_id>")
@operation("GET", "Get a source", tag="sources", responses={200: "Source"})
def source_get(source_id: int) -> Response:
    """One source and its health (last fetch, last error, next try)."""
    return jsonify(shapes.source(_source(source_id)))


@editor_bp.delete(f"/sources/<{ID}:source_id>")
@operation("DELETE", "Remove a source", tag="sources", responses={204: None},
           description="The items it brought stay in the inbox.")
def source_delete(source_id: int) -> Response:
    """Remove a source."""
    source = _source(source_id)
    dbs = db_session()
    sources.remove_source(dbs, source)
    dbs.commit()
    return Response(status=204)


@editor_bp.get("/newsletters/<newsletter>/inbox")
@operation("GET", "List the inbox", tag="inbox", params=INBOX, responses={200: "InboxPage"})
def inbox_list(newsletter: str) -> Response:
    """A page of inbox items, newest first."""
    item = newsletter_or_404(newsletter)
    args = query(INBOX)
    page = inbox.list_items(db_session(), item, state=args["state"], page=args["page"])
    return jsonify({"items": [shapes.inbox_item(i) for i in page.items], "page": page.page,
                    "pages": page.pages, "total": page.total})


@editor_bp.post("/newsletters/<newsletter>/inbox")
@operation("POST", "Save a link", tag="inbox", body=SAVED_LINK,
           responses={201: "InboxItem", 200: "InboxItem"},
           description="201 with the new item; 200 with the item already there when the same "
                       "page (tracking parameters aside) was saved or came from a feed before.")
def inbox_save(newsletter: str) -> Response:
    """Put any page in the inbox."""
    item = newsletter_or_404(newsletter)
    values = json_body(SAVED_LINK)
    dbs = db_session()
    saved, created = inbox.save_link(dbs, item, values["url"], values.get("title") or "",
                                     values.get("description") or "")
    dbs.commit()
    response = jsonify(shapes.inbox_item(saved))
    response.status_code = 201 if created else 200
    return response


@editor_bp.post(f"/inbox/<{ID}:item_id>/accept")
@operation("POST", "Accept an inbox item", tag="inbox", body=ACCEPT, errors=[409],
           responses={200: "AcceptedItem"},
           description="Makes a draft post with the item's title, link, summary and a line "
                       "naming its source. 409 if the item was accepted or dismissed already, "
                       "or `section_id` is not one of the newsletter's sections.")
def inbox_accept(item_id: int) -> Response:
    """Turn an item into a draft post."""
    item = _item(item_id)
    values = json_body(ACCEPT)
    dbs = db_session()
    post = inbox.accept(dbs, item, summary=values.get("summary"),
                        section_id=values.get("section_id"))
    dbs.commit()
    return jsonify({"item": shapes.inbox_item(item), "post": shapes.post(post, current_app.config)})


@editor_bp.post(f"/inbox/<{ID}:item_id>/dismiss")
@operation("POST", "Dismiss an inbox item", tag="inbox", errors=[409],
           responses={200: "InboxItem"},
           description="It is hidden for good and will not come back from its feed. 409 if "
                       "it was accepted or dismissed already.")
def inbox_dismiss(item_id: int) -> Response:
    """Hide an item for good."""
    item = _item(item_id)
    dbs = db_session()
    inbox.dismiss(dbs, item)
    dbs.commit()
    return jsonify(shapes.inbox_item(item))
