"""Typed step parameters: every YAML key a run config can set is a field of one of these models.

ZenML validates step parameters with pydantic when it compiles a run, so a misspelled key
(``extra="forbid"``) or a mistyped value fails before any step runs, and the error names the
key. Each default is written once: on the model (or the dataclass a model is derived from).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model


class StepParameters(BaseModel):
    """Base of every parameter model: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def hyperparameters_of(config_type: type, sized_by_data: tuple[str, ...], name: str, module: str) -> type[StepParameters]:
    """A parameter model holding the fields of a model's config dataclass that a run config may set.

    Fields in ``sized_by_data`` (vocabulary sizes) come from the dataset, not from the config.
    Defaults stay on the dataclass; ``sized(**sizes)`` builds the dataclass for a dataset.
    """
    types = typing.get_type_hints(config_type)
    fields = {
        field.name: (types[field.name], field.default)
        for field in dataclasses.fields(config_type)
        if field.name not in sized_by_data
    }

    def sized(self, **sizes: int):
        return config_type(**sizes, **self.model_dump())

    model = create_model(name, __base__=StepParameters, __module__=module, **fields)
    model.sized = sized
    model.__doc__ = f"The {config_type.__name__} fields a run config sets ({', '.join(sized_by_data)} come from the data)."
    return model
