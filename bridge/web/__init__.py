"""The HTTP layer every feature's views share: auth, bodies, errors, health, CLI."""
