"""Pigeon: an example Guanxi channel plugin for a made-up HTTP messaging provider."""
