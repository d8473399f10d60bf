"""The HTTPS API: ACS-compatible identities and relay configurations, usage and keys.

:mod:`passage.api.service` holds what each call does (store, state, clock);
:mod:`passage.api.routes` maps method and path to handlers, one table;
:mod:`passage.api.server` is the aiohttp adapter that authenticates, dispatches
and renders errors as ACS does; :mod:`passage.api.sync` keeps this node's view
of keys and revocations in step with the shared store.
"""
