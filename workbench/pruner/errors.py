"""The one exception type for invalid user input to the pruning library.

Every check of a config, a pattern string or a registry name raises :class:`ConfigError`. It is
a ``ValueError``, so ``except ValueError`` keeps working; a command-line front end can turn it
into a one-line message and exit status 2, and leave any other exception (a bug) its traceback.

Example:
    >>> from workbench.pruner import ConfigError, process_config
    >>> try:
    ...     process_config({"target_sparsity": 2})
    ... except ConfigError as err:
    ...     print(err)
    target_sparsity: 2 is out of range; allowed: 0 <= target_sparsity < 1
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """Invalid user input: the message names the key, the bad value and what is allowed."""
