"""Who a request comes from, for the per-visitor limits of `mo_explorer.admission`."""

from __future__ import annotations

import gradio as gr


def visitor_of(request: gr.Request | None) -> str | None:
    """The visitor's address: the last X-Forwarded-For hop (what the nearest proxy, such as the Space's, saw), else
    the connection's peer; None for a call made in this process (no request), which per-visitor limits leave alone.

    Earlier hops are what the client itself wrote, so they are not trusted.
    """
    if request is None:
        return None
    hops = [hop.strip() for hop in (request.headers.get("x-forwarded-for") or "").split(",") if hop.strip()]
    if hops:
        return hops[-1]
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"
