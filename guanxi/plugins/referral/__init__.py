"""Referral plugin: attribution tokens, entry points (links, QR codes, posters), referral trees,
invite-N campaigns with a reversible reward ledger, and a social-value score component."""
