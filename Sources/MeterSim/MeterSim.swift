// MeterSim: placeholder while the foundation is laid.
