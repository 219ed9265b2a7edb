"""Errors hetero_opt raises for bad input; their message is one line naming entity, field, value."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a file that cannot be read, parsed or validated."""


class PlanError(RuntimeError):
    """A solver produced a plan the verifier rejects: a bug in hetero_opt."""
