"""The run config: its schema, its validation, and the rules components declare (config/rules.py).

``validate_config`` and ``ConfigError`` are imported on first use: the validator imports the
components, and the components import ``retrieval_lab.config.rules`` to declare their rules, so
importing this package must not import the validator.
"""

__all__ = ["ConfigError", "validate_config"]


def __getattr__(name: str):
    if name in __all__:
        from retrieval_lab.config import validation

        return getattr(validation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
