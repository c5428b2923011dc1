"""tfadv.models."""
