"""Model backends: the interface, the registry and the local model."""
