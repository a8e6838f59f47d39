"""Connections: a ZappWay key wrapped in a revocable bridge token."""
