"""vj engine: a real-time audiovisual performance engine driven by live signals through user patches."""

__version__ = "0.1.0"
