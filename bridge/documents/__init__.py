"""Datastore documents: the external-id map that makes upserts update."""
