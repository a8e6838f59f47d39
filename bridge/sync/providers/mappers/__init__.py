"""One mapper per provider family: payload in, `Change` list out, no I/O."""
