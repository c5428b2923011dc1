"""tfadv.attacks."""
