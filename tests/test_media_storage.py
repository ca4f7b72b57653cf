"""The media storage: a local folder by default, an S3-compatible bucket when
DIGEST_MEDIA_URL says s3://, tested against moto's standalone server on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from flask import Flask
from moto.server import ThreadedMotoServer
from sqlalchemy import func, select

from digest import create_app
from digest.core.config import ConfigError, load_config
from digest.core.models import EditorRole, Media
from digest.core.storage import LocalStorage, S3Storage, app_storage, media_storage
from digest.domain import media
from tests.support.api import ApiClient, make_token
from tests.support.apps import get_db_of
from tests.support.images import SCRIPTED_SVG, photo
from tests.support.workspace import demo_newsletter

KEYS = {"MEDIA_S3_ACCESS_KEY": "testing", "MEDIA_S3_SECRET_KEY": "testing",
        "MEDIA_S3_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free local port, with the bucket `digest-media`."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="digest-media")
    try:
        yield endpoint
    finally:
        server.stop()


def _objects(endpoint: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return [item["Key"] for item in client.list_objects_v2(Bucket="digest-media").get("Contents", [])]


@pytest.mark.one_backend
def test_the_setting_picks_the_backend(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Empty: <instance>/media; file:///DIR: that folder; s3://BUCKET/PREFIX: the bucket;
    anything else stops start-up naming the variable."""
    default = media_storage({"MEDIA_URL": "", "INSTANCE_PATH": str(tmp_path)})
    assert isinstance(default, LocalStorage) and default.root == tmp_path / "media"
    other = media_storage({"MEDIA_URL": f"file://{tmp_path}/pics", "INSTANCE_PATH": "/nowhere"})
    assert isinstance(other, LocalStorage) and other.root == tmp_path / "pics"
    bucket = media_storage({"MEDIA_URL": "s3://b/news/pics", "MEDIA_S3_ENDPOINT": "http://127.0.0.1:1",
                            "INSTANCE_PATH": "/x", **KEYS})
    assert isinstance(bucket, S3Storage) and (bucket.bucket, bucket.prefix) == ("b", "news/pics")
    with pytest.raises(ConfigError, match="DIGEST_MEDIA_URL"):
        load_config({"DIGEST_MEDIA_URL": "ftp://host/x"})


@pytest.mark.one_backend
def test_uploads_go_to_the_bucket_and_are_served_from_it(app_overrides: dict[str, Any],
                                                          s3_endpoint: str) -> None:
    """With DIGEST_MEDIA_URL=s3://…, every size lands under the prefix and /media/… serves
    it from the bucket; a refused file puts nothing there."""
    app: Flask = create_app({**app_overrides, "MEDIA_URL": "s3://digest-media/news",
                             "MEDIA_S3_ENDPOINT": s3_endpoint, **KEYS})
    try:
        with app.app_context(), get_db_of(app).session() as session:
            limits = media.Limits.of(app.config)
            with pytest.raises(media.Refused):
                media.upload(session, app_storage(), SCRIPTED_SVG, "x.svg", limits)
            assert _objects(s3_endpoint) == []
            item = media.upload(session, app_storage(), photo(900, 600), "sky.jpg", limits)
            key = item.variants["email"]["key"]
        assert sorted(_objects(s3_endpoint)) == sorted(
            f"news/{item.variants[name]['key']}" for name in ("email", "email2x", "small", "web"))
        served = app.test_client().get(f"/media/{key}")
        assert served.status_code == 200 and served.mimetype == "image/jpeg"
        assert served.headers["Cache-Control"].startswith("public, max-age=31536000")
        assert served.data[:3] == b"\xff\xd8\xff"
        assert app.test_client().get(f"/media/{key.replace('email', 'web', 1)[:-4]}x.jpg").status_code == 404
    finally:
        get_db_of(app).dispose()


@pytest.mark.one_backend
def test_a_failing_bucket_leaves_no_row(app_overrides: dict[str, Any], s3_endpoint: str) -> None:
    """When the bucket refuses (it does not exist), the upload fails and no row is added."""
    app: Flask = create_app({**app_overrides, "MEDIA_URL": "s3://no-such-bucket/x",
                             "MEDIA_S3_ENDPOINT": s3_endpoint, **KEYS})
    try:
        with app.app_context():
            with get_db_of(app).sessionmaker() as session:
                with pytest.raises(Exception, match="NoSuchBucket"):
                    media.upload(session, app_storage(), photo(100, 100), "a.jpg",
                                 media.Limits.of(app.config))
                session.rollback()
                assert session.scalar(select(func.count()).select_from(Media)) == 0
    finally:
        get_db_of(app).dispose()


@pytest.mark.one_backend
def test_deleting_an_image_removes_it_from_the_bucket(app_overrides: dict[str, Any],
                                                      s3_endpoint: str) -> None:
    """DELETE /api/v1/media/{id} removes every size of the image from the bucket; an image
    the logo shows stays, with its objects."""
    app: Flask = create_app({**app_overrides, "MEDIA_URL": "s3://digest-media/news",
                             "MEDIA_S3_ENDPOINT": s3_endpoint, **KEYS})
    before = set(_objects(s3_endpoint))  # moto keeps one store for the whole process
    try:
        with app.app_context(), get_db_of(app).session() as session:
            limits = media.Limits.of(app.config)
            logo = media.upload(session, app_storage(), photo(300, 100), "logo.jpg", limits)
            spare = media.upload(session, app_storage(), photo(300, 100), "spare.jpg", limits)
            demo_newsletter(session).logo_light = logo
            ids, kept = (logo.id, spare.id), sorted(f"news/{v['key']}" for v in logo.variants.values())
        api = ApiClient(app.test_client(), make_token(app, "pen@example.com", EditorRole.EDITOR))
        assert len(set(_objects(s3_endpoint)) - before) == 8
        assert api.delete(f"/api/v1/media/{ids[0]}").status_code == 409
        assert api.delete(f"/api/v1/media/{ids[1]}").status_code == 204
        assert sorted(set(_objects(s3_endpoint)) - before) == kept
    finally:
        get_db_of(app).dispose()
