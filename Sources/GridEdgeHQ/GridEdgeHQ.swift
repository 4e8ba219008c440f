// GridEdgeHQ: placeholder while the foundation is laid.
