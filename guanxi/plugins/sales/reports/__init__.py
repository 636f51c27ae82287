"""Management reports of the sales plugin, each computed in SQL with a date range and a breakdown."""
