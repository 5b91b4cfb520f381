"""Vocabulary and rules every stage shares: the model, the typed VM view, quantities, run strategies, secrets, state paths."""
