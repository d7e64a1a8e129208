"""The flat sequences: Ragged rows, windows and dataset accessors against plain Python references."""

import numpy as np
import pytest

from movielens_pipeline.data.dataset import SequenceDataset, pad_left
from movielens_pipeline.data.ragged import Ragged, join_rows
from movielens_pipeline.training.sequence_batches import history_windows


def random_rows(seed: int, rows: int = 30) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(1, 50, size=int(rng.integers(0, 12))).tolist() for _ in range(rows)]


@pytest.mark.parametrize("seed", range(5))
def test_ragged_views_match_python_lists(seed):
    lists = random_rows(seed)
    ragged = Ragged.from_rows(lists)
    assert [r.tolist() for r in ragged] == lists
    assert [r.tolist() for r in ragged.without_last(2)] == [row[:-2] if len(row) > 2 else [] for row in lists]
    picked = np.array([5, 0, 5, 29])
    assert [r.tolist() for r in ragged[picked]] == [lists[i] for i in picked]
    assert [r.tolist() for r in ragged[3:9]] == lists[3:9]
    rows, values = ragged[3:9].flat()
    assert values.tolist() == [v for row in lists[3:9] for v in row]
    assert rows.tolist() == [i for i, row in enumerate(lists[3:9]) for _ in row]
    assert [r.tolist() for r in ragged[3:9].compact()] == lists[3:9]
    padded = ragged.padded_left(4)
    assert padded.tolist() == [[0] * (4 - len(row[-4:])) + row[-4:] for row in lists]
    assert pad_left(lists, 4).tolist() == padded.tolist()
    other = random_rows(seed + 100)
    assert [r.tolist() for r in join_rows([ragged, Ragged.from_rows(other)])] == [a + b for a, b in zip(lists, other)]


def plain_windows(sequences, length):
    """The definition: cut from the end, windows overlapping by one, single-item windows dropped."""
    windows = []
    for sequence in sequences:
        end = len(sequence)
        while end >= 2:
            windows.append(list(sequence[max(0, end - length) : end]))
            if end <= length:
                break
            end -= length - 1
    return windows


@pytest.mark.parametrize("length", [2, 3, 5, 8])
def test_windows_equal_the_plain_definition(length):
    lists = random_rows(length, rows=50)
    assert [w.tolist() for w in history_windows(Ragged.from_rows(lists), length)] == plain_windows(lists, length)


def test_dataset_accessors_fingerprint_and_popularity_match_the_per_user_definitions():
    import hashlib

    lists = [row for row in random_rows(7, rows=40) if len(row) >= 3]
    dataset = SequenceDataset.from_sequences(lists, 50)
    assert dataset.valid_targets().tolist() == [row[-2] for row in lists]
    assert dataset.test_targets().tolist() == [row[-1] for row in lists]
    assert [r.tolist() for r in dataset.test_inputs()] == [row[:-1] for row in lists]
    expected = np.zeros(51, dtype=np.int64)
    for row in lists:
        np.add.at(expected, row[:-2], 1)
    np.testing.assert_array_equal(dataset.item_popularity(), expected)
    digest = hashlib.sha256()
    for user, row in enumerate(lists, start=1):
        digest.update(np.int64(user).tobytes() + np.asarray(row, dtype=np.int64).tobytes())
    assert dataset.fingerprint() == digest.hexdigest()[:16]  # the same bytes as the per-user loop hashed


def test_the_dataset_round_trips_through_its_materializer():
    import uuid

    from zenml.client import Client

    from movielens_pipeline.integrations.materializers import SequenceDatasetMaterializer

    lists = [row for row in random_rows(3, rows=40) if len(row) >= 3]
    dataset = SequenceDataset.from_sequences(lists, 50)
    dataset.stats = {"num_users": dataset.num_users}
    store = Client().active_stack.artifact_store
    uri = f"{store.path}/test-dataset-{uuid.uuid4().hex}"
    store.makedirs(uri)
    materializer = SequenceDatasetMaterializer(uri=uri, artifact_store=store)
    materializer.save(dataset)
    loaded = materializer.load(SequenceDataset)
    for name in ("items", "timestamps", "offsets"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(dataset, name))
        assert getattr(loaded, name).dtype == np.int64
    assert loaded.fingerprint() == dataset.fingerprint() and loaded.stats == dataset.stats
    assert [r.tolist() for r in loaded.full_sequences()] == lists
