"""Deals (opportunities) of the sales plugin: deal pipelines with a probability per stage, a
product catalogue, deals with amount and currency, won/lost with a reason; contracts from won
deals with payment plans, payments against instalments and the overdue-receivables job."""
