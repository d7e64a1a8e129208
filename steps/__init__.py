"""One ZenML step per file: thin glue around the plain functions in movielens_pipeline/."""
