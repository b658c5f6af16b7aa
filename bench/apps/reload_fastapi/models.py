"""Reload bench app (FastAPI): the pydantic models."""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, Field


class Status(str, Enum):
    """Order status."""

    NEW = "new"
    PAID = "paid"
    SHIPPED = "shipped"


class ItemIn(BaseModel):
    """An item as a client creates it."""

    name: str = Field(min_length=1, max_length=80)
    price_cents: int = Field(ge=0)
    tags: list[str] = Field(default_factory=list)


class Item(ItemIn):
    """A stored item."""

    id: int


class User(BaseModel):
    """A user."""

    id: int
    email: str
    display_name: str | None = None


class OrderLine(BaseModel):
    """One line of an order."""

    item_id: int
    quantity: int = Field(ge=1, le=1000)


class OrderIn(BaseModel):
    """An order as a client places it."""

    user_id: int
    lines: list[OrderLine] = Field(min_length=1)


class Order(OrderIn):
    """A stored order."""

    id: int
    status: Status = Status.NEW
    created: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class Page(BaseModel):
    """A page of items."""

    items: list[Item]
    total: int
    offset: int
