"""tfadv.losses."""
