"""Real peers on loopback for tests: capture servers, rotel, otelcol and the sidecar."""
