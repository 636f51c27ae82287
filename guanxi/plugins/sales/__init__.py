"""Sales operations: the lead pool (公海) — pools of unowned leads that salespeople claim and
release, with a hold limit per salesperson and return rules run on core's scheduler."""
