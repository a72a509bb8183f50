"""Errors the core raises for the user to read: the UI and CLI show their message as is."""


class UserError(ValueError):
    """Bad input from the user (too long, empty, unknown id, malformed file)."""


class ModelError(RuntimeError):
    """A model failed to load or failed while running; nothing stored is lost."""


class NotFoundError(UserError):
    """An id (session, round, candidate) that does not exist."""
