"""Self-description generated from the registry: manifest.json and OpenAPI."""
