"""The registry's records that steps hand each other: which version was @champion when the run
started, and what the run registered and why. Typed, stored as JSON by their own materializer
(``integrations.materializers.RecordMaterializer``), and shown as a table in the dashboard."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def as_markdown(self) -> str:
        """A two-column table of the fields, for the dashboard."""
        rows = "\n".join(f"| {name} | {_cell(value)} |" for name, value in self.model_dump().items())
        return f"### {type(self).__name__}\n\n| field | value |\n|---|---|\n{rows}\n"


class ChampionRecord(Record):
    """What ``load_champion`` found: the version behind ``@champion`` and its lineage, or no version
    when the registry has no champion yet."""

    registered_model: str
    version: Optional[str] = None
    architecture: Optional[str] = None
    zenml_run_id: Optional[str] = None
    weights_fingerprint: Optional[str] = None
    data_fingerprint: Optional[str] = None

    @property
    def exists(self) -> bool:
        return self.version is not None


class PretrainingVerdict(Record):
    """Whether pretraining paid on validation: the pretrained model against the same training
    without pretraining, per user, paired bootstrap. ``pretrain: auto`` follows the newest one."""

    model: str  # the pretrained model (s3rec)
    without_pretraining: str  # the same training from scratch (sasrec_no_pretraining)
    pays: bool  # the one-sided bootstrap bound of pretrained - without is above 0
    metric: str
    gain: float  # mean per-user difference, pretrained - without, validation split
    confidence: float  # ci_low is the one-sided bound at this level, ci_high its mirror
    ci_low: float
    ci_high: float
    users: int
    decided_on: str  # ISO date
    zenml_run_id: Optional[str] = None

    def summary(self) -> str:
        verdict = "pays" if self.pays else "does not pay"
        return (f"pretraining {verdict} on validation: {self.model} - {self.without_pretraining} {self.metric} "
                f"{self.gain:+.4f} (one-sided {self.confidence:.0%} bootstrap bound {self.ci_low:+.4f}, "
                f"{self.users:,} users; {self.decided_on})")  # fmt: skip


class RegistrationDecision(Record):
    """What ``register`` did: the versions it created, where the candidate's alias went and why."""

    registered_model: str
    candidate: str  # the run's best model on validation
    champion_before: Optional[str] = None  # the version load_champion recorded
    already_registered: dict[str, str] = {}  # model -> version holding its exact weights
    versions: dict[str, str] = {}  # model -> version created by this run
    version: Optional[str] = None  # the candidate's version (new, or the one already holding it)
    alias: Optional[str] = None  # "champion", "challenger", or None when nothing moved
    reason: str
    bootstrap: dict[str, float] = {}  # the gate's paired bootstrap against the champion
    pretraining_plan: str = ""  # what ``pretrain`` made this run train, and why
    pretraining_verdict: Optional[PretrainingVerdict] = None  # measured by this run, when it trained both

    def summary(self) -> str:
        """What was registered and where the aliases went, and why; then the pretraining plan and
        the verdict this run recorded for the next runs, when any."""
        if self.alias is None:
            line = f"Registry: {self.registered_model}: {self.reason}"
        else:
            line = (f"Registry: {self.registered_model} versions {self.versions}; v{self.version} ({self.candidate}, "
                    f"best on validation) is now @{self.alias}: {self.reason}")  # fmt: skip
        if self.pretraining_plan:
            line += f"\nPretraining: {self.pretraining_plan}"
        if self.pretraining_verdict is not None:
            line += f"\nRecorded for pretrain: auto: {self.pretraining_verdict.summary()}"
        return line


class ServedModelRecord(Record):
    """The registered version a batch job scores with, resolved once at its start."""

    registered_model: str
    version: str
    model_uri: str  # models:/<name>/<version>, pinned: a champion that moves mid-job changes nothing
    champion: bool  # whether it was @champion when resolved (publication checks again)
    architecture: Optional[str] = None
    data_fingerprint: Optional[str] = None


def _cell(value) -> str:
    return "-" if value in (None, {}, "") else str(value).replace("|", "\\|")
