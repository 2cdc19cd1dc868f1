class CompareError(Exception):
    """Bad input to ``rlab-compare``; the message names the path or key at fault."""
