"""Optional logger plugins (neptune, TensorBoard) on the run-lifecycle hooks, and metrics export.

Each logger records the config at the start, every logged metric with its step, the pictures an
evaluation wrote to ``pictures/`` and the final summary. They run on the main process only.
"""
