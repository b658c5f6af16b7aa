"""Reload bench app (FastAPI): the API routes, over in-memory data."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from models import Item, ItemIn, Order, OrderIn, Page, Status, User

router = APIRouter(prefix="/api")

ITEMS: dict[int, Item] = {
    i: Item(id=i, name=f"item {i}", price_cents=100 * i, tags=["demo"]) for i in range(1, 21)
}
USERS: dict[int, User] = {i: User(id=i, email=f"user{i}@example.test") for i in range(1, 6)}
ORDERS: dict[int, Order] = {}


@router.get("/items", response_model=Page)
def list_items(offset: int = 0, limit: int = 10) -> Page:
    """List items, a page at a time."""
    values = list(ITEMS.values())
    return Page(items=values[offset : offset + limit], total=len(values), offset=offset)


@router.get("/items/{item_id}", response_model=Item)
def get_item(item_id: int) -> Item:
    """Return one item."""
    if item_id not in ITEMS:
        raise HTTPException(status_code=404, detail="no such item")
    return ITEMS[item_id]


@router.post("/items", response_model=Item, status_code=201)
def create_item(body: ItemIn) -> Item:
    """Store a new item."""
    item = Item(id=max(ITEMS, default=0) + 1, **body.model_dump())
    ITEMS[item.id] = item
    return item


@router.delete("/items/{item_id}", status_code=204)
def delete_item(item_id: int) -> None:
    """Delete one item."""
    ITEMS.pop(item_id, None)


@router.get("/users", response_model=list[User])
def list_users() -> list[User]:
    """List users."""
    return list(USERS.values())


@router.get("/users/{user_id}", response_model=User)
def get_user(user_id: int) -> User:
    """Return one user."""
    if user_id not in USERS:
        raise HTTPException(status_code=404, detail="no such user")
    return USERS[user_id]


@router.post("/orders", response_model=Order, status_code=201)
def create_order(body: OrderIn) -> Order:
    """Place an order."""
    order = Order(id=len(ORDERS) + 1, **body.model_dump())
    ORDERS[order.id] = order
    return order


@router.get("/orders/{order_id}", response_model=Order)
def get_order(order_id: int) -> Order:
    """Return one order."""
    if order_id not in ORDERS:
        raise HTTPException(status_code=404, detail="no such order")
    return ORDERS[order_id]


@router.post("/orders/{order_id}/pay", response_model=Order)
def pay_order(order_id: int) -> Order:
    """Mark an order as paid."""
    order = get_order(order_id)
    order.status = Status.PAID
    return order
