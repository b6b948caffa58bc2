"""lima: curate a LIMA-style alignment set from raw public dumps.

The heavy per-record work (archive streaming, XML parsing, the answer filters
and the HTML conversion) runs in the native module ``lima._core``; this
package holds the selection, assembly and command lines around it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lima")
except PackageNotFoundError:  # running from a source tree that was never installed
    from lima._core import __version__

__all__ = ["__version__"]
