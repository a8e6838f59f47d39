"""ZappWay: the HTTP client, its error tree, typed operations and rate budget."""
