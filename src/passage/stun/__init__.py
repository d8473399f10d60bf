"""Sans-IO STUN codec (RFC 8489) with the TURN (RFC 8656), RFC 5780, 6062 and 8016 attributes."""
