"""Sans-IO TURN server core (RFC 8656): time is passed in, sockets live in ``passage.turn.aio``."""
