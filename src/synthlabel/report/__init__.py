"""Reporting: Markdown tables, plots and per-run pages."""
