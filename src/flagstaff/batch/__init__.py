"""
The batch layer: users in Arrow, served values out in Arrow, evaluated by the
compiled core on every core; adapters for Dask (:mod:`flagstaff.batch.dask`)
and Spark (:mod:`flagstaff.batch.spark`) run the same function on their
workers. Needs pyarrow (``pip install 'flagstaff[arrow]'``).
"""

from ._table import BatchError, evaluate_batches, evaluate_table

__all__ = ("BatchError", "evaluate_batches", "evaluate_table")
