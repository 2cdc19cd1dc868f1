class DataError(Exception):
    """Bad or missing input data; the message names the file (and line)."""
