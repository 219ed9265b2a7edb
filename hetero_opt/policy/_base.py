"""Shared base model of the policy package: frozen, no unknown fields."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """Base of every policy data object: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def replace(self, **changes: Any) -> Self:
        """Return a copy with ``changes`` applied and validated again."""
        return self.model_validate({**self.model_dump(), **changes})
