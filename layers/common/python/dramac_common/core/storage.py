"""Object storage (S3) for files the platform hands to users, such as module data exports, with an
endpoint override for the local stack (moto's server, which then also serves the downloads).

Objects are private; a user downloads one through a presigned GET URL that expires
(``DRAMAC_EXPORT_URL_TTL_SECONDS``).
"""

from __future__ import annotations

from typing import IO, Any

from . import aws
from .settings import get_settings


def _s3_options() -> dict[str, Any]:
    from botocore.config import Config

    settings = get_settings()
    return {"endpoint_url": settings.s3_endpoint_url, "region_name": settings.aws_region,
            "config": Config(signature_version="s3v4")}


s3_client = aws.LazyClient("s3", _s3_options)
reset_client = s3_client.reset


def put_file(key: str, body: IO[bytes], *, content_type: str) -> None:
    """Store ``body`` (read from its current position) under ``key`` in the exports bucket, encrypted."""
    s3_client().upload_fileobj(body, get_settings().exports_bucket, key,
                               ExtraArgs={"ContentType": content_type, "ServerSideEncryption": "AES256"})


def download_url(key: str, *, filename: str) -> str:
    """A presigned GET URL of the object, valid for ``DRAMAC_EXPORT_URL_TTL_SECONDS``."""
    settings = get_settings()
    url: str = s3_client().generate_presigned_url(
        "get_object",
        Params={"Bucket": settings.exports_bucket, "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"'},
        ExpiresIn=settings.export_url_ttl_seconds)
    return url
