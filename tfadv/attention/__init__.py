"""tfadv.attention."""
