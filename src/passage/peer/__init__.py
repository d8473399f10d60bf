"""Peers: two programs meet in a signaling room and talk over the most direct path that works.

This package is the pure core, with time passed in: the reliable stream over
datagrams (:mod:`.arq`), which candidate pair to nominate (:mod:`.nomination`),
the name of the path chosen (:mod:`.path`), reading a relay configuration's
ICE servers (:mod:`.ice_servers`) and the errors a peer reports
(:mod:`.errors`). The SDK that runs it over sockets is :mod:`passage.peer.sdk`
(``from passage.peer.sdk import Peer``); ``docs/client.md`` tells the story.
"""
