"""Analyses of trained models: attention under attack and loss landscapes."""
