"""Infrastructure: storage, tables, crypto, logs, SSRF rules, the outbound client."""
