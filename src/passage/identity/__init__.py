"""Identities, access keys, user tokens and relay credentials, as ACS defines them.

Pure logic with time passed in: no sockets, no clock, no database. The store
keeps identities and keys (:mod:`passage.store.identities`); the API adapter
(:mod:`passage.api`) serves them over HTTPS; the TURN core checks relay
credentials through :class:`passage.identity.relay_credentials.IdentityRelayUsers`.
"""
