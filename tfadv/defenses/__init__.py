"""tfadv.defenses."""
