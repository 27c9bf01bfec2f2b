"""The base of every scenario model: unknown keys are errors and validated objects never change."""

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """A strict, immutable pydantic model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
