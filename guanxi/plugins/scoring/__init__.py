"""The scoring plugin: lead score, social value, explanations, stage rules and the sales priority
queue. Enable it with ``plugins.enabled = ["scoring"]``; see docs/plugins/scoring.md."""
