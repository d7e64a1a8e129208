"""Library behind the movielens-pipeline steps; its folders are the architecture:

- ``data``: sources, contracts, drops, drift, and the built dataset;
- ``models``: every torch model (S3Rec, LRML, BPR-MF), no I/O;
- ``training``: one training loop and each model's batches and losses;
- ``evaluation``: metrics, protocols, baselines, reports;
- ``serving``: the pyfunc model, the registry client, the promotion rule;
- ``integrations``: the only code that imports ZenML (and MLflow tracking for the steps);
- ``parameters``: the typed step parameters' base.
"""
