"""Every torch model, nanoGPT-style: a config dataclass and small modules; no I/O, no framework glue.

- ``s3rec``: the self-attentive encoder with its four pretraining objectives and next-item loss;
- ``lrml``: latent relational metric learning (memory-based relation vectors);
- ``bpr``: BPR matrix factorisation, LRML's reference point.
"""
