"""Training: one loop (``loop.fit``) and what each model plugs into it.

- ``loop``: epochs, validation and early stopping, checkpoints and resume, logging, device;
- ``s3rec`` (+ ``sequence_batches``): S3Rec pretraining and next-item finetuning;
- ``pairwise``: LRML and BPR-MF on (user, item) pairs with sampled negatives;
- ``warm_start``: grow a registered model's tables to today's users and items;
- ``trained_model``: what a training step hands on (safetensors + JSON), ``checkpoints``,
  ``runtime`` (device, seeding, mixed precision).
"""
