"""Inbound CMS sync: sources, webhook ingest, and the batched drain to ZappWay."""
