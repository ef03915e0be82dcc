"""CDS Hooks 2.0 service for low back pain."""

__version__ = "0.1.0"
