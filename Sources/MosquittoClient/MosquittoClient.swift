// MosquittoClient: placeholder while the foundation is laid.
