// DLT645: placeholder while the foundation is laid.
