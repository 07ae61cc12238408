"""The few named errors falco-risk raises."""


class ConfigError(ValueError):
    """The configuration names an unknown key or holds an invalid value."""


class CatalogError(ValueError):
    """A detection catalog file cannot be loaded or fails validation."""
