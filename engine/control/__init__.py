"""The control plane: the engine's one namespace table, validation at the edge, OSCQuery."""
