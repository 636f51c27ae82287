"""The email channel: mailboxes as channel accounts, SMTP sending, raw-mail inbound, bounces and
complaints as receipts, tracking and one-click unsubscribe."""
