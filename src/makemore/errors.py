"""The one exception type meant for users: the CLI turns it into one line on stderr and exit code 2."""


class MakemoreError(Exception):
    """A problem with the user's input (file, flag, checkpoint) rather than a bug in makemore."""
