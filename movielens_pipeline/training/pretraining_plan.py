"""What the pipeline parameter ``pretrain`` makes a run train.

- ``true``: the models as listed, each pretrained where it has a pretraining step;
- ``false``: the models as listed, none pretrained;
- ``auto`` (the default): pretraining has to show on validation that it pays for its time. A run
  that lists a pretrained model beside the same training without pretraining (``s3rec`` and
  ``sasrec_no_pretraining``) trains both, and ``register`` records in the registry whether the
  pretrained one was ahead beyond noise (``PretrainingVerdict``). Later runs follow the newest
  verdict: the pretrained model alone where pretraining paid, the one without pretraining alone
  where it did not, until the verdict is older than ``max_age_days``; then both train again and
  a new verdict replaces it. Without a readable, recent verdict a run trains both: measuring
  costs one extra finetuning, guessing could serve the worse model for months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, Mapping, Sequence, Union

from movielens_pipeline.families import model_spec, without_pretraining
from movielens_pipeline.serving.records import PretrainingVerdict

PretrainSetting = Union[bool, Literal["auto"]]


@dataclass(frozen=True)
class PretrainingPlan:
    models: tuple[str, ...]  # what the run trains
    pretrain: bool  # whether the models with a pretraining step start from it
    explanation: str  # for the terminal, the run report and MLflow
    records_verdict: bool  # whether the run trains a pretrained model beside its no-pretraining twin


def plan_pretraining(
    models: Sequence[str],
    pretrain: PretrainSetting,
    verdicts: Mapping[str, PretrainingVerdict],
    today: date,
    max_age_days: int,
    unreadable: str | None = None,
) -> PretrainingPlan:
    """The run's models and whether they pretrain. ``verdicts``: the registry's newest verdict per
    pretrained model; ``unreadable``: why the registry could not be read (a run then measures)."""
    if pretrain not in (True, False, "auto"):
        raise ValueError(f"pretrain must be true, false or auto, got {pretrain!r}")
    if pretrain != "auto":
        planned, explanation = tuple(models), f"pretrain: {str(pretrain).lower()}"
    else:
        planned, notes = list(models), []
        for name in models:
            if model_spec(name).pretrain_step is None:
                continue
            planned, note = _follow_verdict(planned, name, verdicts.get(name), today, max_age_days, unreadable)
            notes.append(note)
        planned, explanation = tuple(planned), "pretrain: auto: " + ("; ".join(notes) or "no model pretrains")
    measured = any(model_spec(name).pretrain_step and without_pretraining(name) in planned for name in planned)
    return PretrainingPlan(planned, pretrain is not False, explanation, records_verdict=bool(measured and pretrain is not False))


def _follow_verdict(models: list[str], name: str, verdict: PretrainingVerdict | None, today: date,
                    max_age_days: int, unreadable: str | None) -> tuple[list[str], str]:  # fmt: skip
    twin = without_pretraining(name)
    if unreadable is not None:
        why = f"the registry's pretraining verdict could not be read ({unreadable})"
    elif verdict is None:
        why = "no pretraining verdict recorded yet"
    elif (today - date.fromisoformat(verdict.decided_on)).days > max_age_days:
        why = f"the pretraining verdict of {verdict.decided_on} is older than {max_age_days} days"
    elif verdict.pays:
        return [model for model in models if model != twin], (
            f"{verdict.summary()}; {name} trains pretrained" + (f", {twin} is skipped" if twin in models else "")
        )
    else:
        kept = list(dict.fromkeys(twin if model == name else model for model in models))
        return kept, f"{verdict.summary()}; {twin} trains instead of {name}, pretraining is skipped"
    if twin in models:
        return models, f"{why}: {name} (pretrained) and {twin} both train, and this run records a verdict"
    return models, f"{why}, and {twin} is not in models to measure it: {name} pretrains"
