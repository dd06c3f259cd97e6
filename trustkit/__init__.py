"""trustkit: content trust for container images on The Update Framework.

This package is the shared core (names, metadata rules, expiry policy, errors) and
the ``trustkit`` command line. It never talks to the network or to key files itself.
"""

__all__ = ["DEFAULT_SERVER", "__version__"]

__version__ = "0.1.0"
DEFAULT_SERVER = "http://127.0.0.1:4443"  # the metadata server a command uses unless told
