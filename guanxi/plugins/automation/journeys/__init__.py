"""Journeys: definitions (data, versioned), their checks, and the engine that runs them per customer."""
