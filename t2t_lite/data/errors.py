"""The one exception the data package raises for bad input or bad data settings."""


class DataError(ValueError):
    """Input data is missing or malformed; the message names the file, line or setting."""
