"""Reports: the memory-energy summary table (and, later, plots)."""

from tf_lanmax.reports.summary import render_table, summary

__all__ = ["render_table", "summary"]
