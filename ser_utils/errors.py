"""The one exception type that means "bad input": the command line turns it into exit status 2.

Why a type of its own: a ``ValueError`` raised deep inside numpy or a bug of ours must not read
like a user's mistake. Everything the user can fix (a path, a flag's value, a corpus too small
for its split, a checkpoint of another version) raises :class:`UserError` with a one-line
message that names the file or value and the fix; anything else is a bug, reported with its
traceback saved to a log file.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: the message names the file or value and says how to fix it."""
