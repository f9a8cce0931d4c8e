"""securelogin: a Secure Login System for brokerages."""

__version__ = "0.1.0"
