"""Library code behind the movielens-pipeline steps: plain functions, no ZenML."""
