"""Each console page as HTML, drawn from the REST API's own answers.

A page function takes the JSON bodies of the operations it shows (``GET
/live/allocations``, ``GET /identities``...) and returns the page's body; the
live parts are separate fragment functions, so the page and its Server-Sent
Events updates are drawn by the same code. Buttons that change something
name the REST operation they call (``data-method``, ``data-path``); the
script sends it with the session's CSRF token. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from passage.console.charts import Series, bar_chart, line_chart
from passage.console.html import bytes_text, duration_text, esc, table, time_text

__all__ = [
    "FRAGMENTS",
    "IDENTITY_VERSION",
    "hc_page",
    "identities_page",
    "identity_usage_page",
    "overview_page",
    "relays_page",
    "settings_page",
]

IDENTITY_VERSION = "2023-10-01"
"""The ``api-version`` the console's identity calls use."""

Body = Mapping[str, Any]

ERROR_NAMES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    486: "Allocation Quota Reached",
    500: "Server Error",
    508: "Insufficient Capacity",
}
"""STUN/TURN error codes by name (RFC 8489 §14.8, RFC 8656 §19)."""


def _quoted(text: object) -> str:
    return urllib.parse.quote(str(text), safe="")


def _button(label: str, method: str, path: str, *, confirm: str = "", extra: str = "") -> str:
    ask = f' data-confirm="{esc(confirm)}"' if confirm else ""
    return (
        f'<button type="button" data-method="{esc(method)}" data-path="{esc(path)}"'
        f"{ask}{extra}>{esc(label)}</button>"
    )


def _values(body: Body) -> list[Any]:
    value = body.get("value")
    return value if isinstance(value, list) else []


# --- Overview ------------------------------------------------------------------------


def allocations_fragment(turn: Body) -> str:
    by_transport = turn.get("allocationsByTransport") or {}
    rows = [
        (esc(transport.upper()), esc(by_transport.get(transport, 0)))
        for transport in ("udp", "tcp", "tls")
    ]
    total = sum(int(n) for n in by_transport.values())
    return f'<p class="big"><span class="figure">{total}</span> live allocations</p>' + table(
        "Live allocations by client transport", ("Transport", "Allocations"), rows, empty="none"
    )


def throughput_fragment(throughput: Body) -> str:
    points = _values(throughput)
    to_peer = [int(point.get("bytesToPeer", 0)) for point in points]
    from_peer = [int(point.get("bytesFromPeer", 0)) for point in points]
    labels = [""] * len(points)
    if points:
        for index, text in (
            (0, "−60 min"),
            (len(points) // 2, "−30 min"),
            (len(points) - 1, "now"),
        ):
            labels[index] = text
    last_minute = sum(to_peer[-6:]) + sum(from_peer[-6:])
    return (
        line_chart(
            "throughput-chart",
            "Bytes relayed in each 10 seconds of the last hour",
            labels,
            [Series("to peers (solid)", to_peer), Series("from peers (dashed)", from_peer)],
        )
        + f"<p>Last minute: <strong>{esc(bytes_text(last_minute))}</strong> relayed "
        f"({esc(bytes_text(last_minute / 60))}/s on average).</p>"
    )


def turn_fragment(turn: Body) -> str:
    started, ended = turn.get("allocationsStarted", 0), turn.get("allocationsEnded", 0)
    errors = turn.get("errorsSent") or {}
    refusals = [
        (esc(code), esc(ERROR_NAMES.get(int(code), "")), esc(count))
        for code, count in sorted(errors.items(), key=lambda item: int(item[0]))
    ]
    drops = [
        (esc(reason), esc(count)) for reason, count in sorted((turn.get("dropped") or {}).items())
    ]
    return (
        f"<p>Since start: <strong>{esc(started)}</strong> allocations started, "
        f"<strong>{esc(ended)}</strong> ended.</p>"
        + table(
            "Error answers sent, by code (401 includes routine challenges)",
            ("Code", "Meaning", "Answers"),
            refusals,
            empty="none sent",
        )
        + table(
            "Packets dropped without an answer, by reason",
            ("Reason", "Packets"),
            drops,
            empty="none dropped",
        )
    )


def hc_live_fragment(listeners: Body, bridges: Body) -> str:
    listener_rows = [
        (
            esc(item["hybridConnection"]),
            esc(item["address"]),
            esc(time_text(item["connectedAt"])),
            esc(item["bridges"]),
        )
        for item in _values(listeners)
    ]
    bridge_rows = [
        (
            esc(item["hybridConnection"]),
            esc(item["senderAddress"]),
            esc(time_text(item["openedAt"])),
            esc(bytes_text(item["bytesToListener"])),
            esc(bytes_text(item["bytesToSender"])),
        )
        for item in _values(bridges)
    ]
    return (
        f"<p><strong>{len(listener_rows)}</strong> listeners connected, "
        f"<strong>{len(bridge_rows)}</strong> bridges open.</p>"
        + table(
            "Connected listeners",
            ("Hybrid connection", "From", "Since", "Bridges"),
            listener_rows,
            empty="no listener is connected",
            table_id="listeners",
        )
        + table(
            "Active bridges",
            ("Hybrid connection", "Sender", "Since", "To listener", "To sender"),
            bridge_rows,
            empty="no bridge is open",
            table_id="bridges",
        )
    )


def rooms_fragment(rooms: Body) -> str:
    rows = [(esc(room["room"]), esc(room["members"])) for room in _values(rooms)]
    return table("Signaling rooms with members", ("Room", "Members"), rows, empty="no room is open")


def nodes_fragment(nodes: Body) -> str:
    """The cluster's nodes, when there are several; nothing for a single node."""
    items = _values(nodes)
    if len(items) < 2:
        return ""
    rows = [
        (
            esc(node["name"]) + (" (this node)" if node.get("thisNode") else ""),
            esc(node["region"]),
            f"<code>{esc(node['turnHost'])}:{esc(node['turnPort'])}</code>",
            esc(node["allocations"]),
            "draining" if node.get("draining") else "serving",
        )
        for node in items
    ]
    return f"<h2>Nodes</h2><p><strong>{len(items)}</strong> nodes in the cluster.</p>" + table(
        "Live nodes of the cluster",
        ("Node", "Region", "TURN", "Allocations", "State"),
        rows,
        empty="none",
        table_id="nodes",
    )


def _live(fragment_id: str, html: str) -> str:
    return f'<div class="live" id="{fragment_id}">{html}</div>'


def overview_fragments(data: Mapping[str, Body]) -> dict[str, str]:
    return {
        "live-allocations": allocations_fragment(data["turn"]),
        "live-throughput": throughput_fragment(data["throughput"]),
        "live-turn": turn_fragment(data["turn"]),
        "live-hc": hc_live_fragment(data["listeners"], data["bridges"]),
        "live-rooms": rooms_fragment(data["rooms"]),
        "live-nodes": nodes_fragment(data["nodes"]),
    }


def overview_page(data: Mapping[str, Body]) -> str:
    fragments = overview_fragments(data)
    sections = (
        ("Relayed, last hour", "live-throughput"),
        ("Allocations", "live-allocations"),
        ("Starts and refusals", "live-turn"),
        ("Hybrid Connections", "live-hc"),
        ("Signaling", "live-rooms"),
    )
    return (
        _live("live-nodes", fragments["live-nodes"])
        + '<div class="cards" data-live="overview">'
        + "".join(
            f'<section aria-labelledby="{key}-h"><h2 id="{key}-h">{esc(title)}</h2>'
            f"{_live(key, fragments[key])}</section>"
            for title, key in sections
        )
        + "</div>"
    )


# --- Relays --------------------------------------------------------------------------


def _cell(text: str, sort: object = None) -> str:
    """A cell's HTML, with the value the script sorts it by (numbers sort as numbers)."""
    value = text if sort is None else str(sort)
    return f'<span data-sort="{esc(value)}">{text}</span>'


def relays_rows(allocations: Body) -> str:
    rows = []
    for item in _values(allocations):
        identity = item.get("identity") or item.get("username")
        cells = (
            _cell(esc(identity)),
            _cell(esc(item["transport"].upper())),
            _cell(f"<code>{esc(item['clientAddress'])}</code>"),
            _cell("<br>".join(f"<code>{esc(a)}</code>" for a in item["relayedAddresses"])),
            _cell(esc(", ".join(item["peers"]) or "none"), len(item["peers"])),
            _cell(esc(bytes_text(item["bytesToPeer"])), item["bytesToPeer"]),
            _cell(esc(bytes_text(item["bytesFromPeer"])), item["bytesFromPeer"]),
            _cell(esc(duration_text(item["ageSeconds"])), item["ageSeconds"]),
            _button(
                "End",
                "DELETE",
                f"/live/allocations/{_quoted(item['id'])}",
                confirm=f"End the allocation of {identity} now?",
            ),
        )
        rows.append(
            f'<tr data-id="{esc(item["id"])}" data-transport="{esc(item["transport"])}">'
            + "".join(
                f'<td data-label="{esc(title)}">{cell}</td>'
                for title, cell in zip(RELAY_COLUMNS, cells, strict=True)
            )
            + "</tr>"
        )
    if not rows:
        return '<tr class="empty"><td colspan="9">No allocation is live.</td></tr>'
    return "".join(rows)


RELAY_COLUMNS = (
    "User or identity",
    "Transport",
    "Client",
    "Relayed",
    "Peers",
    "To peers",
    "From peers",
    "Age",
    "",
)


def relays_page(allocations: Body) -> str:
    headers = "".join(
        '<th scope="col" aria-sort="none">'
        f'<button type="button" class="sort" data-column="{index}">{esc(title)}</button></th>'
        if title
        else '<th scope="col"><span class="visually-hidden">Actions</span></th>'
        for index, title in enumerate(RELAY_COLUMNS)
    )
    filters = (
        '<form class="filters" role="search" data-filter="relays">'
        '<label for="filter-text">Filter</label>'
        '<input id="filter-text" name="text" type="search" placeholder="user, address, peer">'
        '<label for="filter-transport">Transport</label>'
        '<select id="filter-transport" name="transport"><option value="">any</option>'
        '<option value="udp">UDP</option><option value="tcp">TCP</option>'
        '<option value="tls">TLS</option></select></form>'
    )
    return (
        f'{filters}<div class="scroll"><table id="relays" data-live="relays">'
        "<caption>Live allocations on this node (updated every second)</caption>"
        f"<thead><tr>{headers}</tr></thead>"
        f'<tbody id="relays-rows" class="live">{relays_rows(allocations)}</tbody></table></div>'
    )


# --- Identities ----------------------------------------------------------------------


def identities_page(identities: Body, search: str) -> str:
    identity_path = f"/identities?api-version={IDENTITY_VERSION}"
    rows = []
    for item in _values(identities):
        quoted = _quoted(item["id"])
        base = f"/identities/{quoted}"
        actions = (
            _button(
                "Issue token",
                "POST",
                f"{base}/:issueAccessToken?api-version={IDENTITY_VERSION}",
                extra=' data-body=\'{"scopes":["voip"]}\' data-show="token-output"',
            )
            + _button(
                "Revoke tokens",
                "POST",
                f"{base}/:revokeAccessTokens?api-version={IDENTITY_VERSION}",
                confirm="Revoke every token and relay credential of this identity?",
            )
            + _button(
                "Delete",
                "DELETE",
                f"{base}?api-version={IDENTITY_VERSION}",
                confirm="Delete this identity? Its id can never be used again.",
            )
            + f'<a href="/console/identities/usage?id={quoted}">Usage</a>'
        )
        revoked = time_text(item["tokensRevokedAt"]) if item.get("tokensRevokedAt") else "never"
        rows.append(
            (
                f"<code>{esc(item['id'])}</code>",
                esc(time_text(item["createdAt"])),
                esc(revoked),
                f'<div class="actions">{actions}</div>',
            )
        )
    search_form = (
        '<form class="filters" role="search" method="get" action="/console/identities">'
        '<label for="search">Search</label>'
        f'<input id="search" name="search" type="search" value="{esc(search)}" maxlength="200">'
        '<button type="submit">Search</button></form>'
    )
    create = _button("Create identity", "POST", identity_path, extra=' data-reload="true"')
    output = (
        '<section aria-labelledby="token-h" class="result"><h2 id="token-h">Issued token</h2>'
        "<p>A token is shown once, here, when you issue it: copy it now.</p>"
        '<output id="token-output" class="secret"></output></section>'
    )
    export = (
        '<form class="filters" method="get" action="/console/export/usage.csv">'
        '<label for="export-granularity">Ledger CSV</label>'
        '<select id="export-granularity" name="granularity"><option value="hour">per hour</option>'
        '<option value="day">per day</option></select>'
        '<label for="export-days">last</label>'
        '<select id="export-days" name="days"><option value="1">24 hours</option>'
        '<option value="7">7 days</option><option value="31">31 days</option>'
        '<option value="366">366 days</option></select>'
        '<button type="submit">Export CSV</button></form>'
    )
    return (
        f'{search_form}<p class="toolbar">{create}</p>{output}'
        + table(
            "Identities, newest first (deleted ones are not listed)",
            ("Identity", "Created", "Tokens revoked", "Actions"),
            rows,
            empty="No identity matches." if search else "No identity yet.",
        )
        + f"<h2>Export</h2>{export}"
    )


def _usage_series(rows: Sequence[Body], starts: Sequence[str]) -> list[Series]:
    by_start = {row["start"]: row for row in rows}
    return [
        Series(
            "to peers (solid)", [int(by_start.get(s, {}).get("bytesToPeer", 0)) for s in starts]
        ),
        Series(
            "from peers (hatched)",
            [int(by_start.get(s, {}).get("bytesFromPeer", 0)) for s in starts],
        ),
    ]


def identity_usage_page(
    identity: str, hourly: Body, hours: Sequence[str], daily: Body, days: Sequence[str]
) -> str:
    """``hours`` and ``days``: the bucket starts to draw (the API's ``start`` values)."""
    export = f"/console/export/usage.csv?identity={_quoted(identity)}"
    hour_labels = [s[11:13] + "h" if index % 3 == 0 else "" for index, s in enumerate(hours)]
    day_labels = [s[5:10] if index % 5 == 0 else "" for index, s in enumerate(days)]
    rows = [
        (
            esc(str(row["start"])[:10]),
            esc(bytes_text(row["bytesToPeer"])),
            esc(bytes_text(row["bytesFromPeer"])),
            esc(row["allocationsStarted"]),
            esc(duration_text(row["allocationSeconds"])),
        )
        for row in reversed(_values(daily))
    ]
    return (
        f"<p>Identity <code>{esc(identity)}</code></p>"
        "<h2>Per hour, last 24 hours</h2>"
        + bar_chart(
            "hourly-chart",
            "Bytes relayed per hour",
            hour_labels,
            _usage_series(_values(hourly), hours),
        )
        + "<h2>Per day, last 30 days</h2>"
        + bar_chart(
            "daily-chart", "Bytes relayed per day", day_labels, _usage_series(_values(daily), days)
        )
        + table(
            "Per day",
            ("Day", "To peers", "From peers", "Allocations", "Allocation time"),
            rows,
            empty="Nothing relayed in the last 30 days.",
        )
        + f'<p><a href="{export}&amp;granularity=hour&amp;days=31">Export per hour (CSV)</a> · '
        f'<a href="{export}&amp;granularity=day&amp;days=366">'
        'Export per day (CSV)</a> · <a href="/console/identities">All identities</a></p>'
    )


# --- Hybrid Connections --------------------------------------------------------------


def _rules_table(entity: str | None, rules: Sequence[Body]) -> str:
    """A hybrid connection's rules (the namespace's when ``entity`` is None): keys on
    demand, rotation, deletion, and a form to add one."""
    entity_query = f"?entity={_quoted(entity)}" if entity is not None else ""
    rows = []
    for rule in rules:
        path = f"/authorizationRules/{_quoted(rule['name'])}{entity_query}"
        output_id = "keys-" + hashlib.sha256(f"{entity}/{rule['name']}".encode()).hexdigest()[:12]
        rights = esc(",".join(rule["rights"]))
        actions = (
            _button("Show keys", "GET", path, extra=f' data-show="{output_id}"')
            + _button(
                "Rotate keys",
                "PUT",
                path,
                confirm="Replace both keys? Tokens signed with the old ones stop working.",
                extra=f' data-rotate="true" data-rights="{rights}" data-show="{output_id}"',
            )
            + _button(
                "Delete",
                "DELETE",
                path,
                confirm=f"Delete the rule {rule['name']}? Its keys stop working.",
                extra=' data-reload="true"',
            )
        )
        rows.append(
            (
                esc(rule["name"]),
                esc(", ".join(rule["rights"])),
                f'<div class="actions">{actions}</div>'
                f'<output id="{output_id}" class="secret"></output>',
            )
        )
    caption = f"Rules of {entity}" if entity is not None else "Rules of the namespace"
    form_id = "rule-" + hashlib.sha256(str(entity).encode()).hexdigest()[:12]
    entity_attribute = f' data-entity="{esc(entity)}"' if entity is not None else ""
    rights_boxes = "".join(
        f'<label><input type="checkbox" name="rights" value="{right}"> {right}</label>'
        for right in ("Listen", "Send", "Manage")
    )
    add = (
        f'<form class="filters" data-create="rule"{entity_attribute}>'
        f'<label for="{form_id}">New rule</label>'
        f'<input id="{form_id}" name="rule" required maxlength="256" '
        'pattern="[A-Za-z0-9][A-Za-z0-9._\\-]*">'
        f'<fieldset><legend class="visually-hidden">Rights</legend>{rights_boxes}</fieldset>'
        '<button type="submit">Add rule</button></form>'
    )
    return table(caption, ("Rule", "Rights", "Keys"), rows, empty="no rule") + add


def _hc_usage(usage: Body) -> dict[str, tuple[int, int, int]]:
    """Hybrid connection → (bytes to listeners, bytes to senders, requests), summed over
    the rows of ``GET /usage?kind=hybridConnection`` (every rule, every hour)."""
    totals: dict[str, tuple[int, int, int]] = {}
    for row in _values(usage):
        to_listener, to_sender, requests = totals.get(row["hybridConnection"], (0, 0, 0))
        totals[row["hybridConnection"]] = (
            to_listener + int(row["bytesToListener"]),
            to_sender + int(row["bytesToSender"]),
            requests + int(row["requests"]),
        )
    return totals


def _relayed_text(totals: tuple[int, int, int]) -> str:
    to_listener, to_sender, requests = totals
    return (
        f"Last 24 hours: <strong>{esc(bytes_text(to_listener))}</strong> to listeners, "
        f"<strong>{esc(bytes_text(to_sender))}</strong> to senders, "
        f"<strong>{requests}</strong> HTTP requests."
    )


def hc_page(
    connections: Body,
    rules: Mapping[str | None, Sequence[Body]],
    listeners: Body,
    bridges: Body,
    usage: Body,
) -> str:
    """``usage``: ``GET /usage?kind=hybridConnection`` over the last 24 hours."""
    relayed = _hc_usage(usage)
    blocks = []
    for connection in _values(connections):
        auth = "required" if connection["requiresClientAuthorization"] else "not required"
        delete = _button(
            "Delete",
            "DELETE",
            f"/hybridConnections/{_quoted(connection['name'])}",
            confirm=f"Delete {connection['name']} and its rules?",
            extra=' data-reload="true"',
        )
        blocks.append(
            f'<section class="entity" aria-label="{esc(connection["name"])}">'
            f"<h3>{esc(connection['name'])}</h3>"
            f"<p>Senders need a token: {'yes' if auth == 'required' else 'no'}. {delete}</p>"
            f"<p>{_relayed_text(relayed.get(connection['path'], (0, 0, 0)))}</p>"
            f"{_rules_table(connection['name'], rules.get(connection['name'], ()))}</section>"
        )
    create = (
        '<form class="filters" data-create="hc">'
        '<label for="hc-name">Name</label>'
        '<input id="hc-name" name="name" required maxlength="260" pattern="[A-Za-z0-9][^?#]*">'
        '<label><input type="checkbox" name="requiresClientAuthorization" checked> '
        "senders need a token</label>"
        '<button type="submit">Create hybrid connection</button></form>'
    )
    return (
        "<h2>Live on this node</h2>"
        + _live("live-hc", hc_live_fragment(listeners, bridges))
        + f"<h2>Hybrid connections</h2>{create}"
        + ("".join(blocks) or "<p>No hybrid connection yet.</p>")
        + '<p><a href="/console/export/usage.csv?kind=hybridConnection&amp;granularity=hour'
        '&amp;days=31">Export Hybrid Connections usage per hour (CSV)</a></p>'
        + "<h2>Namespace</h2><p>Rules here hold for every hybrid connection.</p>"
        + _rules_table(None, rules.get(None, ()))
    )


# --- Settings ------------------------------------------------------------------------


def _after_reload(item: Body) -> str:
    if "afterReload" not in item:
        return ""
    when = "applied at once" if item.get("onReload") == "applies" else "needs a restart"
    value = esc(item["afterReload"]) if item["afterReload"] else "(not set)"
    return f"<strong>{value}</strong> ({when})"


def settings_page(settings: Body) -> str:
    items = _values(settings)
    rows = [
        (
            f"<code>{esc(item['name'])}</code>",
            f"<code>{esc(item['flag'])}</code>",
            esc(item["value"]) if item["value"] else '<span class="muted">(not set)</span>',
            _after_reload(item),
        )
        for item in items
    ]
    reload = settings.get("reload") or {}
    changes = sum(1 for item in items if "afterReload" in item)
    if not reload.get("checked"):
        pending = "This server cannot re-read its configuration, so no reload is shown."
    elif reload.get("error"):
        pending = (
            '<p class="alert" role="alert">A reload now would be refused, and the '
            f"running configuration kept: {esc(reload['error'])}</p>"
        )
    elif changes:
        pending = (
            f"<p>A reload now (<code>passage reload --data-dir DIR</code> or SIGHUP) would "
            f"change <strong>{changes}</strong> setting{'s' if changes != 1 else ''}: see the "
            "last column. Those that need a restart keep their value until then.</p>"
        )
    else:
        pending = "<p>A reload now would change nothing: the configuration reads the same.</p>"
    if not pending.startswith("<p"):
        pending = f"<p>{pending}</p>"
    return (
        "<p>What this server runs with, from its flags, <code>PASSAGE_*</code> variables, "
        "configuration file and defaults, as reloads changed it. Secrets are masked.</p>"
        + pending
        + table(
            "Settings",
            ("Setting (TOML key)", "Flag", "Value", "After a reload"),
            rows,
            empty="none",
        )
    )


FRAGMENTS: Mapping[str, Callable[[Mapping[str, Body]], dict[str, str]]] = {
    "overview": overview_fragments,
    "relays": lambda data: {"relays-rows": relays_rows(data["allocations"])},
    "hc": lambda data: {"live-hc": hc_live_fragment(data["listeners"], data["bridges"])},
}
"""The live parts of each page, by the element id each replaces."""
