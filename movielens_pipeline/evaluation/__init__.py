"""Evaluation: how good is a model, measured the same way for every model and baseline.

- ``metrics``: leave-one-out ranking (full ranking, seen items excluded, pessimistic ties) and
  the 99-sampled-negatives protocol; ``top_items``: a dot-product model's best items block by
  block over the catalogue, for ranking and serving;
- ``scorers``: trained weights → score functions; ``baselines``: popularity and EASE;
- ``protocols``: every model on both splits and protocols, paired bootstrap comparisons;
- ``reports``: the HTML page, chart and console table.
"""
