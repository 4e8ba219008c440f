// GridEdgeAgent: placeholder while the foundation is laid.
