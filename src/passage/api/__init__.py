"""The management REST API: ACS-compatible identities and relay configurations, usage, keys,
and Hybrid Connections administration.

:mod:`passage.api.service` holds what each call does (store, state, clock);
:mod:`passage.api.routes` maps method and path to handlers, one table, and
declares the paths the API answers at the front door (``API_PATHS``);
:mod:`passage.api.server` is the aiohttp handler that authenticates,
dispatches and renders errors as ACS does; :mod:`passage.api.sync` keeps this
node's view of keys and revocations in step with the shared store.
"""
