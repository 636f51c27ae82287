"""Bulk sends (群发): one message to a segment over a channel, through the outbox."""
