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

    def summary(self) -> str:
        """One line for the terminal: what was registered and where the aliases went, and why."""
        if self.alias is None:
            return f"Registry: {self.registered_model}: {self.reason}"
        return (f"Registry: {self.registered_model} versions {self.versions}; v{self.version} ({self.candidate}, "
                f"best on validation) is now @{self.alias}: {self.reason}")  # fmt: skip


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
