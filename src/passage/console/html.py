"""The console's HTML: escaping, the page frame, and how numbers and times read.

Every value that came from a client or the store goes through :func:`esc`.
The frame links one stylesheet and one script from ``/console/static/``
(nothing inline, so the Content-Security-Policy can forbid inline script),
puts the CSRF token in a ``<meta>`` for the script, and gives every page the
same navigation, a skip link, and a sign-out form.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterable, Sequence

__all__ = [
    "NAVIGATION",
    "bytes_text",
    "duration_text",
    "esc",
    "page",
    "signin_page",
    "table",
    "time_text",
]

NAVIGATION: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"),
    ("relays", "Relays"),
    ("identities", "Identities"),
    ("hc", "Hybrid Connections"),
    ("settings", "Settings"),
)
"""(page name, title): ``/console/`` is the overview, the others ``/console/NAME``."""

STATIC = "/console/static"


def esc(value: object) -> str:
    """``value`` as text safe in HTML content and in quoted attributes."""
    return html.escape(str(value), quote=True)


def bytes_text(count: object) -> str:
    """``1536`` → ``1.5 KB`` (powers of 1000, as network counters read)."""
    amount = float(count) if isinstance(count, int | float) else 0.0
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if amount < 1000 or unit == "TB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def duration_text(seconds: object) -> str:
    """``3725`` → ``1h 2m``; ``42`` → ``42s``."""
    total = int(seconds) if isinstance(seconds, int | float) else 0
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def time_text(iso: object) -> str:
    """An API time (``2026-12-07T16:40:52Z``) as ``2026-12-07 16:40:52 UTC``."""
    if not isinstance(iso, str) or not iso:
        return ""
    try:
        instant = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return instant.strftime("%Y-%m-%d %H:%M:%S UTC")


def table(
    caption: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    empty: str,
    table_id: str = "",
    body_id: str = "",
) -> str:
    """A table whose cells are HTML already (escaped by the caller); ``empty`` when no rows."""
    head = "".join(f'<th scope="col">{esc(title)}</th>' for title in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr class="empty"><td colspan="{len(headers)}">{esc(empty)}</td></tr>'
    ids = f' id="{esc(table_id)}"' if table_id else ""
    tbody_id = f' id="{esc(body_id)}"' if body_id else ""
    return (
        f'<div class="scroll"><table{ids}><caption>{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody{tbody_id}>{body}</tbody></table></div>"
    )


def _head(title: str, csrf: str | None) -> str:
    meta = f'<meta name="csrf-token" content="{esc(csrf)}">' if csrf else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"{meta}<title>{esc(title)} · Passage console</title>"
        f'<link rel="stylesheet" href="{STATIC}/console.css">'
        f'<script src="{STATIC}/console.js" defer></script></head>'
    )


def page(name: str, title: str, csrf: str, body: str) -> str:
    """A signed-in page: navigation (``name`` marked current), ``body``, sign-out."""
    links = "".join(
        f'<li><a href="/console/{"" if page_name == "overview" else page_name}"'
        + (' aria-current="page"' if page_name == name else "")
        + f">{esc(page_title)}</a></li>"
        for page_name, page_title in NAVIGATION
    )
    signout = (
        '<form method="post" action="/console/signout" class="signout">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<button type="submit">Sign out</button></form>'
    )
    return (
        f'{_head(title, csrf)}<body data-page="{esc(name)}">'
        '<a class="skip" href="#main">Skip to content</a>'
        '<header><span class="brand">Passage</span>'
        f'<nav aria-label="Console"><ul>{links}</ul></nav>{signout}</header>'
        f'<main id="main" tabindex="-1"><h1>{esc(title)}</h1>'
        '<p id="status" role="status" aria-live="polite"></p>'
        f"{body}</main></body></html>"
    )


def signin_page(message: str = "", *, link_token: str = "") -> str:
    """The sign-in form (or, for a one-time link, the button that uses it); ``message``
    says why the last attempt failed."""
    alert = f'<p class="alert" role="alert">{esc(message)}</p>' if message else ""
    if link_token:
        form = (
            '<form method="post" action="/console/link">'
            f'<input type="hidden" name="token" value="{esc(link_token)}">'
            "<p>This one-time link signs you in once, then stops working.</p>"
            '<button type="submit">Sign in with this link</button></form>'
        )
    else:
        form = (
            '<form method="post" action="/console/signin" autocomplete="off">'
            '<label for="key">Access key or connection string</label>'
            '<input id="key" name="key" type="password" required autofocus '
            'spellcheck="false" autocapitalize="off">'
            '<p class="hint">From <code>passage connection-string --data-dir DIR</code>, '
            "or use a link from <code>passage console-link --data-dir DIR</code>.</p>"
            '<button type="submit">Sign in</button></form>'
        )
    return (
        f'{_head("Sign in", None)}<body data-page="signin">'
        '<main id="main" class="signin"><h1>Passage console</h1>'
        f"{alert}{form}</main></body></html>"
    )
