from retrieval_lab.config.validation import ConfigError, validate_config

__all__ = ["ConfigError", "validate_config"]
