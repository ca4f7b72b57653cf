"""Where uploaded images live: one small interface, a local folder or an S3-compatible bucket.

`media_storage(config)` picks the backend from DIGEST_MEDIA_URL: empty means
<instance>/media, `file:///FOLDER` another folder, `s3://BUCKET/PREFIX` a bucket (with
DIGEST_MEDIA_S3_* for a non-AWS endpoint and keys) that every web host shares. Keys are
"UID/NAME.EXT" made by digest.domain.media; the app serves them itself at /media/KEY, so
links in sent emails stay the same whichever backend holds the bytes.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

# What a key may be: the storage never sees a path that climbs out of its folder.
KEY = re.compile(r"\A[A-Za-z0-9_-]{8,64}/[a-z0-9]{1,16}\.(?:png|jpg|gif)\Z")


class MediaStorage(Protocol):
    """Put, read and delete the bytes of one key."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store data under key, whole or not at all."""
        ...

    def get(self, key: str) -> bytes | None:
        """Return the bytes under key, or None when there are none."""
        ...

    def delete(self, key: str) -> None:
        """Remove key; nothing happens when it is absent."""
        ...


def _checked(key: str) -> str:
    if not KEY.match(key):
        raise ValueError(f"not a media key: {key!r}")
    return key


class LocalStorage:
    """Files in a folder; each is written to a temporary name and renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store data under key, whole or not at all."""
        path = self.root / _checked(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        try:
            with open(temporary, "wb") as stream:
                stream.write(data)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def get(self, key: str) -> bytes | None:
        """Return the bytes under key, or None when there are none."""
        try:
            return (self.root / _checked(key)).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        """Remove key and its folder once empty; nothing happens when it is absent."""
        path = self.root / _checked(key)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass  # other sizes of the image are still there


class S3Storage:
    """Objects under a prefix of an S3-compatible bucket, through boto3."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{_checked(key)}" if self.prefix else _checked(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store data under key (an S3 PUT is atomic)."""
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data,
                               ContentType=content_type)

    def get(self, key: str) -> bytes | None:
        """Return the bytes under key, or None when there are none."""
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._name(key))
        except self.client.exceptions.NoSuchKey:
            return None
        data: bytes = answer["Body"].read()
        return data

    def delete(self, key: str) -> None:
        """Remove key; S3 answers alike whether it was there or not."""
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))


def media_storage(config: Mapping[str, Any]) -> MediaStorage:
    """Return the storage DIGEST_MEDIA_URL names (default: the instance's media folder)."""
    url = config.get("MEDIA_URL") or ""
    if not url:
        return LocalStorage(Path(config["INSTANCE_PATH"]) / "media")
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStorage(Path(parts.path))
    import boto3  # type: ignore[import-untyped]  # loaded only by installs that keep media in a bucket

    client = boto3.client(
        "s3",
        endpoint_url=config.get("MEDIA_S3_ENDPOINT") or None,
        region_name=config.get("MEDIA_S3_REGION") or None,
        aws_access_key_id=config.get("MEDIA_S3_ACCESS_KEY") or None,
        aws_secret_access_key=config.get("MEDIA_S3_SECRET_KEY") or None,
    )
    return S3Storage(client, parts.netloc, parts.path)


def app_storage() -> MediaStorage:
    """Return the running app's media storage, made once per app."""
    from flask import current_app

    storage: MediaStorage | None = current_app.extensions.get("digest.media")
    if storage is None:
        storage = current_app.extensions["digest.media"] = media_storage(current_app.config)
    return storage
