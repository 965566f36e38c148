"""The one exception type users are meant to read.

Every failure caused by bad input (a missing file, a corrupt video, a config
typo, a checkpoint of the wrong shape) is raised as :class:`HfagpError` with a
message that names the file and says what to do. The CLI prints it without a
traceback and exits with status 2.
"""


class HfagpError(RuntimeError):
    """A user-facing error: the message names the file involved and the fix."""
