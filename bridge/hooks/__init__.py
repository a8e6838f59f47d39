"""Triggers: detecting new events, the event log, REST-hook subscriptions and deliveries."""
