"""The wire format: the one base model of HTTP bodies and queue messages, and the success envelope.

Python names are snake_case, the wire's camelCase (``site_id`` is ``siteId``), through one alias
generator. Only pydantic is imported here, so queue workers use these models without the HTTP stack.
"""

from __future__ import annotations

import uuid
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

T = TypeVar("T")


class CamelModel(BaseModel):
    """HTTP bodies (requests and responses) and queue messages: snake_case in Python, camelCase on the wire."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Envelope(BaseModel, Generic[T]):
    """``{"success": true, "data": ...}``: what every route answers (as a ``response_model``)."""

    success: bool = True
    data: T


class Deleted(CamelModel):
    id: uuid.UUID
    deleted: bool
