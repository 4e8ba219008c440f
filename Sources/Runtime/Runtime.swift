// Runtime: placeholder while the foundation is laid.
