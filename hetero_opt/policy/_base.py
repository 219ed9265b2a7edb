"""The policy package's data objects share the project's frozen base model."""

from hetero_opt.instance import Frozen

__all__ = ["Frozen"]
