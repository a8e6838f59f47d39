"""Self-description generated from the registry: manifest.json, OpenAPI, and the Zapier, Make
and n8n apps (`exports/`)."""
