"""``passage hc``: hybrid connections, their authorization rules, and SAS tokens.

Each action works on the local store (``--data-dir``/``--database-url``; a
running server sees the change with its next refresh) or through a running
server (``--connection-string``, the ``/hybridConnections`` and
``/authorizationRules`` API). Opening the local store creates the namespace's
``RootManageSharedAccessKey`` if it is missing, as the server does at start.

``token NAME`` prints a ``SharedAccessSignature`` for ``http://HOST[:PORT]/NAME``
signed with the rule's primary key (the root rule by default): pass it to
hyco-ws/hyco-https or the .NET client. ``HOST`` is ``--endpoint``'s (formerly
``--base-url``), else the
address the server advertises (``--public-host``, as ``passage
connection-string``) or the connection string's.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

from passage.cli.command import Command
from passage.cli.management import (
    RemoteError,
    RemoteTarget,
    add_management_arguments,
    call_remote,
    management_config,
    remote_target,
    with_hybrid_admin,
)
from passage.cli.parsing import HelpFormatter, deprecated_alias
from passage.cli.running import served_endpoint
from passage.config import Config, ConfigError
from passage.hybrid.admin import AdminError, HybridAdmin, parse_rights, rights_names, sas_token
from passage.hybrid.admin_json import authorization_rule_body, hybrid_connection_body
from passage.hybrid.endpoint import ConnectionStringError, RelayConnectionString, RelayEndpoint
from passage.hybrid.entities import ROOT_RULE
from passage.hybrid.sas import Rights, SasRule
from passage.runtime import running_server

__all__ = ["COMMAND"]

DEFAULT_TTL = 3600
"""Seconds a token printed by ``passage hc token`` stays valid, unless ``--ttl`` says."""

T = TypeVar("T")
Json = dict[str, Any]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    create = _action(actions, "create", "create a hybrid connection", _create)
    create.add_argument("name", help="its name: letters, digits, '.', '-', '_' and '/'")
    create.add_argument(
        "--no-client-auth",
        action="store_true",
        help="let senders connect without a token (listeners always need one)",
    )
    _action(actions, "list", "list the hybrid connections", _list)
    delete = _action(actions, "delete", "delete a hybrid connection and its rules", _delete)
    delete.add_argument("name")

    rule = actions.add_parser(
        "rule", help="authorization rules (SAS key names and keys)", formatter_class=HelpFormatter
    )
    rule_actions = rule.add_subparsers(title="actions", metavar="ACTION", required=True)
    add = _action(rule_actions, "add", "create or replace a rule", _rule_add, entity=True)
    add.add_argument("rule", help="the rule's name (the token's skn)")
    add.add_argument(
        "--rights", required=True, help="comma-separated: listen, send, manage (all three)"
    )
    add.add_argument(
        "--primary-key",
        "--key",
        dest="primary_key",
        help="the primary key (default: the current one, or 32 random bytes in base64)",
    )
    add.add_argument("--secondary-key", help="the secondary key (default: as --primary-key)")
    _action(rule_actions, "list", "list rules (without keys)", _rule_list, entity=True)
    show = _action(rule_actions, "show", "print a rule with its keys", _rule_show, entity=True)
    show.add_argument("rule")
    remove = _action(rule_actions, "delete", "delete a rule", _rule_delete, entity=True)
    remove.add_argument("rule")

    token = _action(actions, "token", "print a SAS token for a hybrid connection", _token)
    token.add_argument("name", help="the hybrid connection")
    token.add_argument(
        "--rule", default=ROOT_RULE, help=f"the rule that signs (default {ROOT_RULE})"
    )
    token.add_argument(
        "--ttl",
        type=_seconds,
        default=DEFAULT_TTL,
        metavar="SECONDS",
        help=f"how long the token is valid (default {DEFAULT_TTL})",
    )
    token.add_argument(
        "--endpoint",
        dest="base_url",
        metavar="URL",
        help="https://HOST:PORT/ the clients dial (default: the server's own)",
    )
    token.add_argument(
        "--base-url",
        dest="base_url",
        action=deprecated_alias("--endpoint"),
        help=argparse.SUPPRESS,
    )

    string = _action(
        actions,
        "connection-string",
        "print the relay connection string passage expose/connect and Azure clients take",
        _connection_string,
    )
    string.add_argument("name", help="the hybrid connection")
    string.add_argument(
        "--rule", default=ROOT_RULE, help=f"the rule whose key it holds (default {ROOT_RULE})"
    )
    string.add_argument(
        "--endpoint",
        metavar="URL",
        help="sb://HOST:PORT/ (TLS) or ws://HOST:PORT/ the clients dial (default: our API port)",
    )


_EXAMPLES = {
    "_create": "passage hc create ssh --data-dir .passage",
    "_list": "passage hc list --data-dir .passage",
    "_delete": "passage hc delete ssh --data-dir .passage",
    "_rule_add": "passage hc rule add sender --rights send --entity ssh --data-dir .passage",
    "_rule_list": "passage hc rule list --entity ssh --data-dir .passage",
    "_rule_show": "passage hc rule show sender --entity ssh --data-dir .passage",
    "_rule_delete": "passage hc rule delete sender --entity ssh --data-dir .passage",
    "_token": "passage hc token ssh --ttl 3600 --data-dir .passage",
    "_connection_string": "passage hc connection-string ssh --data-dir .passage",
}
"""One command line per action, for the end of its ``--help``."""


def _action(
    actions: Any,
    name: str,
    help_text: str,
    run: Callable[[argparse.Namespace, _Namespace], int],
    *,
    entity: bool = False,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(
        name,
        help=help_text,
        description=f"{help_text[0].upper()}{help_text[1:]}.",
        epilog=f"example:\n  {_EXAMPLES[run.__name__]}",
        formatter_class=HelpFormatter,
    )
    if entity:
        parser.add_argument(
            "--entity",
            metavar="NAME",
            help="the hybrid connection the rule is on (default: the namespace)",
        )
    add_management_arguments(parser)
    parser.set_defaults(hc_action=run)
    return parser


def _seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds >= 1")
    return value


def _run(arguments: argparse.Namespace) -> int:
    config = management_config(arguments)
    target = remote_target(arguments, config)
    namespace: _Namespace = _Remote(target) if target is not None else _Local(config, arguments)
    action: Callable[[argparse.Namespace, _Namespace], int] = arguments.hc_action
    return action(arguments, namespace)


# --- where the namespace is: the local store or a running server ----------------------


class _Namespace(Protocol):
    """The actions, answering in the API's JSON shapes (``passage.hybrid.admin_json``)."""

    def create_connection(self, name: str, requires_client_authorization: bool) -> Json: ...
    def list_connections(self) -> list[Json]: ...
    def delete_connection(self, name: str) -> None: ...
    def put_rule(
        self,
        entity: str | None,
        rule: str,
        rights: Rights,
        primary: str | None,
        secondary: str | None,
    ) -> tuple[Json, bool]: ...
    def list_rules(self, entity: str | None) -> list[Json]: ...
    def get_rule(self, entity: str | None, rule: str) -> Json: ...
    def delete_rule(self, entity: str | None, rule: str) -> None: ...
    def token(self, name: str, rule: str, ttl: int, base_url: str | None) -> str: ...
    def connection_string(self, name: str, rule: str, endpoint: str | None) -> str: ...


class _Local:
    """The store itself, through :class:`HybridAdmin`; refusals exit with status 2."""

    def __init__(self, config: Config, arguments: argparse.Namespace) -> None:
        self.config = config
        self.arguments = arguments

    def _with_admin(self, work: Callable[[HybridAdmin], Awaitable[T]]) -> T:
        return with_hybrid_admin(self.config, work)

    def create_connection(self, name: str, requires_client_authorization: bool) -> Json:
        async def work(admin: HybridAdmin) -> Json:
            return hybrid_connection_body(
                await admin.create_connection(
                    name, requires_client_authorization=requires_client_authorization
                )
            )

        return self._with_admin(work)

    def list_connections(self) -> list[Json]:
        async def work(admin: HybridAdmin) -> list[Json]:
            return [hybrid_connection_body(c) for c in await admin.list_connections()]

        return self._with_admin(work)

    def delete_connection(self, name: str) -> None:
        self._with_admin(lambda admin: admin.delete_connection(name))

    def put_rule(
        self,
        entity: str | None,
        rule: str,
        rights: Rights,
        primary: str | None,
        secondary: str | None,
    ) -> tuple[Json, bool]:
        async def work(admin: HybridAdmin) -> tuple[Json, bool]:
            written = await admin.put_rule(
                entity, rule, rights, primary_key=primary, secondary_key=secondary
            )
            return authorization_rule_body(written.rule, entity, keys=True), written.created

        return self._with_admin(work)

    def list_rules(self, entity: str | None) -> list[Json]:
        async def work(admin: HybridAdmin) -> list[Json]:
            rules = await admin.list_rules(entity)
            return [authorization_rule_body(rule, entity, keys=False) for rule in rules]

        return self._with_admin(work)

    def get_rule(self, entity: str | None, rule: str) -> Json:
        async def work(admin: HybridAdmin) -> Json:
            return authorization_rule_body(await admin.get_rule(entity, rule), entity, keys=True)

        return self._with_admin(work)

    def delete_rule(self, entity: str | None, rule: str) -> None:
        self._with_admin(lambda admin: admin.delete_rule(entity, rule))

    def token(self, name: str, rule: str, ttl: int, base_url: str | None) -> str:
        url = base_url or _advertised_url(self.arguments, self.config)
        return self._with_admin(lambda admin: admin.token(name, rule, ttl=ttl, base_url=url))

    def connection_string(self, name: str, rule: str, endpoint: str | None) -> str:
        async def work(admin: HybridAdmin) -> tuple[str, SasRule]:
            connection = await admin.get_connection(name)
            signing = (await admin.refresh()).rules_for(connection).get(rule)
            if signing is None:
                raise ConfigError(f"no authorization rule {rule!r} on {name!r} or the namespace")
            return connection.name, signing

        entity, signing = self._with_admin(work)
        return _relay_connection_string(
            endpoint or _advertised_url(self.arguments, self.config), entity, signing
        )


class _Remote:
    """A running server, through its API, signed with the connection string's key."""

    def __init__(self, target: RemoteTarget) -> None:
        self.target = target

    def create_connection(self, name: str, requires_client_authorization: bool) -> Json:
        body = {"requiresClientAuthorization": requires_client_authorization}
        reply: Json = call_remote(self.target, "PUT", _connection_path(name), body=body)
        return reply

    def list_connections(self) -> list[Json]:
        reply: list[Json] = call_remote(self.target, "GET", "/hybridConnections")["value"]
        return reply

    def delete_connection(self, name: str) -> None:
        call_remote(self.target, "DELETE", _connection_path(name))

    def put_rule(
        self,
        entity: str | None,
        rule: str,
        rights: Rights,
        primary: str | None,
        secondary: str | None,
    ) -> tuple[Json, bool]:
        body: Json = {"rights": rights_names(rights)}
        body |= {"primaryKey": primary} if primary is not None else {}
        body |= {"secondaryKey": secondary} if secondary is not None else {}
        before = {r["name"] for r in self.list_rules(entity)}  # to say created or replaced
        reply: Json = call_remote(
            self.target, "PUT", _rule_path(rule), _entity_query(entity), body=body
        )
        return reply, rule not in before

    def list_rules(self, entity: str | None) -> list[Json]:
        reply = call_remote(self.target, "GET", "/authorizationRules", _entity_query(entity))
        rules: list[Json] = reply["value"]
        return rules

    def get_rule(self, entity: str | None, rule: str) -> Json:
        reply: Json = call_remote(self.target, "GET", _rule_path(rule), _entity_query(entity))
        return reply

    def delete_rule(self, entity: str | None, rule: str) -> None:
        call_remote(self.target, "DELETE", _rule_path(rule), _entity_query(entity))

    def token(self, name: str, rule: str, ttl: int, base_url: str | None) -> str:
        entity, signing = self._signing(name, rule)
        try:
            return sas_token(base_url or self._base_url(), entity, signing, int(time.time()) + ttl)
        except AdminError as error:
            raise ConfigError(error.message) from None

    def connection_string(self, name: str, rule: str, endpoint: str | None) -> str:
        entity, signing = self._signing(name, rule)
        return _relay_connection_string(endpoint or self._base_url(), entity, signing)

    def _signing(self, name: str, rule: str) -> tuple[str, SasRule]:
        """The connection's name and the rule that signs for it: its own, else the namespace's
        (as the relay looks a token's ``skn`` up)."""
        connection = call_remote(self.target, "GET", _connection_path(name))
        try:
            found = self.get_rule(name, rule)
        except RemoteError as error:
            if error.code != "AuthorizationRuleNotFound":
                raise
            found = self.get_rule(None, rule)
        signing = SasRule(found["name"], Rights(0), found["primaryKey"], found["secondaryKey"])
        return str(connection["name"]), signing

    def _base_url(self) -> str:
        """The server's own address: ``sb://`` for its TLS port, ``ws://`` for a plain one."""
        if self.target.advertised is not None:
            url = self.target.advertised.websocket_url() or ""
            return url.replace("wss://", "sb://", 1)
        endpoint = urllib.parse.urlsplit(self.target.connection.endpoint)
        return f"{'sb' if endpoint.scheme == 'https' else 'ws'}://{endpoint.netloc}"


def _relay_connection_string(endpoint_url: str, entity: str, signing: SasRule) -> str:
    """``Endpoint=sb://HOST:PORT/;SharedAccessKeyName=...;SharedAccessKey=...;EntityPath=...``.

    Our own address comes as ``http://HOST:API_PORT``: the API port is TLS, so ``sb://``.
    """
    try:
        endpoint = RelayEndpoint.parse(endpoint_url.replace("http://", "sb://", 1))
    except ConnectionStringError as error:
        raise ConfigError(f"--endpoint: {error}") from None
    return str(RelayConnectionString(endpoint, signing.name, signing.primary_key, None, entity))


def _connection_path(name: str) -> str:
    return "/hybridConnections/" + urllib.parse.quote(name, safe="/")


def _rule_path(rule: str) -> str:
    return "/authorizationRules/" + urllib.parse.quote(rule, safe="")


def _entity_query(entity: str | None) -> dict[str, str] | None:
    return {"entity": entity} if entity is not None else None


def _advertised_url(arguments: argparse.Namespace, config: Config) -> str:
    """``http://HOST[:PORT]`` for the address ``passage serve`` advertises, on the API port."""
    endpoint, _ = served_endpoint(arguments, config)
    return endpoint.token_url()


# --- actions --------------------------------------------------------------------------


def _create(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    created = namespace.create_connection(arguments.name, not arguments.no_client_auth)
    print(f"created hybrid connection {created['name']} ({_senders(created)})")
    return 0


def _list(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    connections = namespace.list_connections()
    width = max((len(c["name"]) for c in connections), default=0)
    for connection in connections:
        print(f"{connection['name']:<{width}}  {_senders(connection)}")
    return 0


def _delete(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    namespace.delete_connection(arguments.name)
    print(f"deleted hybrid connection {arguments.name} and its rules")
    return 0


def _rule_add(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    try:
        rights = parse_rights(arguments.rights.split(","))
    except AdminError as error:
        raise ConfigError(f"--rights: {error.message}") from None
    rule, created = namespace.put_rule(
        arguments.entity, arguments.rule, rights, arguments.primary_key, arguments.secondary_key
    )
    verb = "created" if created else "replaced"
    print(f"{verb} rule {rule['name']} on {_where(arguments.entity)}: {', '.join(rule['rights'])}")
    _print_keys(rule)
    return 0


def _rule_list(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    rules = namespace.list_rules(arguments.entity)
    width = max((len(rule["name"]) for rule in rules), default=0)
    for rule in rules:
        print(f"{rule['name']:<{width}}  {', '.join(rule['rights'])}")
    return 0


def _rule_show(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    rule = namespace.get_rule(arguments.entity, arguments.rule)
    print(f"rule {rule['name']} on {_where(arguments.entity)}: {', '.join(rule['rights'])}")
    _print_keys(rule)
    return 0


def _rule_delete(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    namespace.delete_rule(arguments.entity, arguments.rule)
    print(f"deleted rule {arguments.rule} on {_where(arguments.entity)}")
    return 0


def _token(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    token = namespace.token(arguments.name, arguments.rule, arguments.ttl, arguments.base_url)
    limit, whose = _token_lifetime_limit(management_config(arguments))
    if arguments.ttl > limit:  # the relay would answer 401 to every use of it
        print(
            f"passage: warning: --ttl {arguments.ttl} is longer than {whose} "
            f"--hc-max-token-lifetime ({limit} s): the relay refuses this token (401); "
            f"use --ttl {limit} or less, or raise --hc-max-token-lifetime",
            file=sys.stderr,
        )
    print(token)
    return 0


def _token_lifetime_limit(config: Config) -> tuple[int, str]:
    """The longest lifetime the relay of ``config``'s data directory accepts, and whose
    it is: the running server's (``server.json``), else this configuration's."""
    record = running_server(Path(config.data_dir))
    if record is not None and record.hc_max_token_lifetime is not None:
        return record.hc_max_token_lifetime, f"the running server's (pid {record.pid})"
    default = next(f.default for f in fields(Config) if f.name == "hc_max_token_lifetime")
    configured = config.hc_max_token_lifetime
    return configured, "the default" if configured == default else "the configured"


def _connection_string(arguments: argparse.Namespace, namespace: _Namespace) -> int:
    print(namespace.connection_string(arguments.name, arguments.rule, arguments.endpoint))
    return 0


def _senders(connection: Json) -> str:
    return (
        "senders need a token" if connection["requiresClientAuthorization"] else "anonymous senders"
    )


def _where(entity: str | None) -> str:
    return "the namespace" if entity is None else f"hybrid connection {entity}"


def _print_keys(rule: Json) -> None:
    print(f"primary key: {rule['primaryKey']}")
    print(f"secondary key: {rule['secondaryKey']}")


COMMAND = Command(
    name="hc",
    help="manage Hybrid Connections: connections, authorization rules, SAS tokens",
    add_arguments=_add_arguments,
    run=_run,
    example="passage hc create ssh --data-dir .passage",
)
