"""The split the benchmarks move back in time (benchmarks/common.drop_last_items)."""

import numpy as np

from benchmarks.common import drop_last_items
from movielens_pipeline.data.dataset import SequenceDataset


def test_dropping_the_last_item_tests_on_the_former_validation_item():
    dataset = SequenceDataset.from_sequences([[1, 2, 3, 4, 5, 6], [7, 8, 9, 10], [2, 4, 6]], num_items=10)
    shorter = drop_last_items(dataset, 1)
    assert shorter.num_users == dataset.num_users
    np.testing.assert_array_equal(shorter.test_targets(), [5, 9, 6])  # the third user keeps its three items
    np.testing.assert_array_equal(shorter.valid_targets()[:2], dataset.test_inputs().last(2)[:2])
    assert [list(row) for row in shorter.train_sequences()] == [[1, 2, 3], [7], [2]]
    assert shorter.stats["num_interactions"] == 11
    assert shorter.fingerprint() != dataset.fingerprint()
