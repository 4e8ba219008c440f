// GridEdgeCore: placeholder while the foundation is laid.
