"""The one exception type that the `oak` command turns into a single error line."""


class OakError(Exception):
    """Bad input or state the user can fix; the message names the file, key or value."""
