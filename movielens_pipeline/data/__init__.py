"""Data: sources → raw tables → contracts → the built dataset.

- ``sources`` (typed specs) dispatches to the loaders ``embedded``, ``grouplens`` and
  ``local_files``, which share ``files`` (zip/folder reading, downloads, checksums) and ``raw``
  (the three tables every loader returns);
- ``contracts`` runs the Great Expectations suites in ``data_contracts/``;
- ``drops`` adds new rating drops, each checked on its own; ``drift`` profiles new data against old;
- ``build`` turns raw tables into a ``dataset.SequenceDataset`` (k-core, ids, time order, splits).
"""
