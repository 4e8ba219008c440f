// GridEdgeContract: placeholder while the foundation is laid.
