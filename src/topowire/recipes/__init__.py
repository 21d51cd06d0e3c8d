"""Recipes shipped with topowire (the embedded default of `topowire run`)."""
