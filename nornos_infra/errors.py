"""Errors a user can fix: printed as one line (what is wrong, what to do), exit status 1."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in input or environment that the user can correct; never a traceback."""


class SpecError(UserError):
    """An environment file that is not valid; ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))
