"""Descriptions of the bridge for others: platform apps generated from the registry."""
