"""The evaluation of one shard of the users, as a worker process runs it: the run's trained models
and the baselines rebuilt in the worker, every one ranked for the shard's users with the
negatives drawn once for all of them (``protocols.evaluation_users``), so the merged shards
(``protocols.merge_shards``) give exactly the one-process numbers."""

from __future__ import annotations

from dataclasses import dataclass

from movielens_pipeline import families
from movielens_pipeline.data.dataset import SequenceDataset
from movielens_pipeline.evaluation import baselines, metrics, protocols
from movielens_pipeline.training.trained_model import TrainedModel


@dataclass
class EvaluationJob:
    """What every shard evaluates: the trained models, the baselines' settings, the device."""

    trained: list[TrainedModel]
    ease_l2: float
    ease_memory_mb: float
    device: str = "cpu"


def score_fns(job: EvaluationJob, dataset: SequenceDataset) -> tuple[dict, dict, dict, list[str]]:
    """Every model's and baseline's score function; the baselines' notes and parameters; the names
    of the models that ignore histories."""
    recommenders = {m.summary["name"]: families.load_recommender(m, job.device) for m in job.trained}
    fns = {name: recommender.score_fn for name, recommender in recommenders.items()}
    baseline_fns, notes, params = baselines.baseline_score_fns(dataset, job.ease_l2, job.ease_memory_mb)
    fns |= baseline_fns
    history_free = [name for name, recommender in recommenders.items() if not recommender.uses_history]
    return fns, notes, params, history_free


def evaluate_shard(dataset: SequenceDataset, users: protocols.EvaluationUsers, job: EvaluationJob):
    """Every model and baseline on ``users``: (evaluations, baselines' notes, baselines' parameters)."""
    fns, notes, params, history_free = score_fns(job, dataset)
    return protocols.evaluate_models(fns, dataset, device=job.device, history_free=history_free, users=users), \
        notes, params  # fmt: skip


def evaluate(job: EvaluationJob, dataset: SequenceDataset, users: protocols.EvaluationUsers, processes: int = 1):
    """``evaluate_shard`` of every user in this process, or of ``processes`` shards in as many
    workers (each fits its own EASE), merged: the same numbers either way."""
    if processes <= 1:
        return evaluate_shard(dataset, users, job)
    from movielens_pipeline.integrations.workers import evaluate_in_workers

    batch_rows = metrics.rows_per_batch(dataset.num_items)
    shards = evaluate_in_workers(evaluate_shard, users, batch_rows, processes, dataset, job)
    evaluations = protocols.merge_shards([shard[0] for shard in shards], dataset.num_items)
    return evaluations, shards[0][1], shards[0][2]


def shard_edges(users: int, batch_rows: int, processes: int) -> list[int]:
    """Where the shards of ``users`` start and end: at multiples of ``batch_rows``, so every
    ranking batch holds the users it holds in one process (same scores to the last bit)."""
    batches = -(-users // batch_rows)
    return [min(users, batch_rows * (batches * rank // processes)) for rank in range(processes + 1)]
