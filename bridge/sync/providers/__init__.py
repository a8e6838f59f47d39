"""Inbound CMS webhooks, pure layer: provider records, signature checks, payload mapping."""
