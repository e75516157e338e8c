"""Prop routes: the game master's hand on any lock or output (audited)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from controller.api.access import GM
from controller.api.deps import DEFAULT_WHO, ServiceDep, Who, actor, http_errors
from controller.api.errors import ApiError
from controller.api.models import CommandSent, LockOrderConfirmed, LockOrderPending
from controller.outputs import order_message

router = APIRouter(prefix="/api/props", tags=["props"], dependencies=[GM])

ACTIONS = ("lock", "unlock", "on", "off", "blink", "pulse", "beep", "reset", "clear")


class PropOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)   # sent on to a node

    params: dict[str, JsonValue] = Field(default_factory=dict)
    who: Who = DEFAULT_WHO


@router.post("/{node}/{prop}/{action}",
             response_model=LockOrderConfirmed | LockOrderPending | CommandSent,
             responses={202: {"model": LockOrderPending,
                              "description": "lock/unlock sent, not confirmed by the node yet"}})
async def order(request: Request, response: Response, node: str, prop: str, action: str, *,
                service: ServiceDep, body: PropOrder | None = None) -> dict[str, Any]:
    """Lock, unlock, or command a prop (``on``, ``off``, ``blink``, ``pulse``, ``reset``).

    ``lock`` and ``unlock`` wait up to 1 s (without holding anything else up) for the node
    to report its relay in that state: 200 with ``confirmed: true`` and the milliseconds it
    took, or 202 with ``confirmed: false`` (still pending: resent until it is) and why, and
    a French ``message``. While the emergency alert lasts, anything that would lock a
    maglock is refused (409); an unlock never is.
    """
    if action not in ACTIONS:
        raise ApiError(422, f"action inconnue {action!r} : {', '.join(ACTIONS)}",
                       en=f"unknown action {action!r}: {', '.join(ACTIONS)}")
    body = body or PropOrder()
    with http_errors():
        command_id = service.orders.prop_order(node, prop, action, dict(body.params),
                                        who=actor(request, body.who))
    if action not in ("lock", "unlock"):
        return {"command_id": command_id}
    await service.outputs.wait_confirmed([(node, prop)])
    report = service.outputs.lock_report([(node, prop)])
    entry = (report["confirmed"] or report["unconfirmed"])[0]
    if not report["all_confirmed"]:
        response.status_code = 202
    return {"command_id": command_id, "confirmed": report["all_confirmed"], **entry,
            "mqtt": report["mqtt"], "message": order_message(action, report)}
