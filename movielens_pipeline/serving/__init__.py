"""Serving: the MLflow pyfunc every registered model is served through (``pyfunc``), the
registry client that logs, registers and loads models
(``registry``), and the promotion rule (``promotion``). Served models import nothing that needs
ZenML.
"""
