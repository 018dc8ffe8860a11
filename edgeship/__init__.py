"""edgeship: take an LLM checkpoint to a measured deployment on Android phones."""

__version__ = "0.1.0"
