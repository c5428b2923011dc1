"""Build tooling of tfadv (Bazel BUILD generator, pytest runner)."""
