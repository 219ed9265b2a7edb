"""Autoscaler state kept server-side: one entry per service, written atomically after every step.

All services share one file (``autoscaler-state.json`` in the state folder), written through a
temporary file and a rename, so a crash never leaves one service a cycle ahead of another and a
restarted server continues with exactly the decisions an uninterrupted one would make.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from hetero_opt.autoscaler import AutoscalerState, Starting
from hetero_opt.errors import InputError
from hetero_opt.instance import Frozen
from hetero_opt.io import require_keys, write_atomic
from hetero_opt.policy.engine import EngineState, ServicePolicyState
from hetero_opt.service.models import StepResponse

STATE_FILE = "autoscaler-state.json"
#: Keys every state file this server writes holds (a file without them, ``{}`` say, is refused, not read as a
#: fresh start that forgets cooldowns and starting units).
_WRITTEN = ("last_time", "services")


class ServiceState(Frozen):
    """What the server remembers about one service."""

    policy: ServicePolicyState = Field(default_factory=ServicePolicyState, description="Policy engine state.")
    starting: list[Starting] = Field(default_factory=list, description="Units still starting.")
    desired_replicas: dict[str, int] = Field(default_factory=dict, description="Last desired pods per role.")
    desired_units: int | None = Field(default=None, description="Last desired units.")
    placed_units: int | None = Field(default=None, description="Units after the last placement.")


class StoredState(Frozen):
    """The state file."""

    last_time: float | None = Field(default=None, description="Time of the last step (s).")
    services: dict[str, ServiceState] = Field(default_factory=dict, description="State per service id.")
    last_request: str | None = Field(
        default=None, description="SHA-256 of the last step's request: the same request again is answered, not applied."
    )
    last_response: StepResponse | None = Field(
        default=None, description="The last step's answer, saved with the state it led to (a retry gets it again)."
    )

    def autoscaler_state(self) -> AutoscalerState:
        """The :class:`AutoscalerState` these entries make up."""
        return AutoscalerState(
            engine=EngineState(services={sid: s.policy for sid, s in self.services.items()}),
            starting={sid: list(s.starting) for sid, s in self.services.items() if s.starting},
            last_time=self.last_time,
        )


class StateStore:
    """Loads and saves :class:`StoredState`; without a folder it lives in memory only."""

    def __init__(self, folder: Path | None) -> None:
        self.path = folder / STATE_FILE if folder is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        self.state = self._load()

    def _load(self) -> StoredState:
        if self.path is None or not self.path.exists():
            return StoredState()
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            state = StoredState.model_validate(data)
        except (OSError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            raise InputError(f"State file '{self.path}': cannot be read back: {first}") from None
        require_keys(data, _WRITTEN, f"State file '{self.path}'")
        return state

    def save(self, state: StoredState) -> None:
        """Keep ``state`` and write it atomically."""
        if self.path is not None:
            write_atomic(self.path, state.model_dump_json(indent=1))
        self.state = state
