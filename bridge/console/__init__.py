"""The console: server-rendered pages at /console for connections, CMS sources, hooks and each
connection's activity, on the same services and rules as the JSON API."""
