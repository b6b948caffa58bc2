"""The exceptions lima raises. The native ones are defined in ``lima._core``;
I/O problems surface as the built-in ``FileNotFoundError``/``PermissionError``."""

from lima._core import ArchiveError, DumpFormatError, LimaError


class ConfigError(LimaError, ValueError):
    """A config file or option is invalid; the message names the file and key."""


__all__ = ["ArchiveError", "ConfigError", "DumpFormatError", "LimaError"]
