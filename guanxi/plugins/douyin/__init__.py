"""Douyin (抖音) open platform channel: business accounts' private messages, comments, follows and leads."""
