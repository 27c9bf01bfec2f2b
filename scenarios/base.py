"""The base of every scenario model: unknown keys are errors and validated objects never change."""

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A strict, immutable pydantic model: numbers must be finite (``.inf`` and ``.nan`` are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
