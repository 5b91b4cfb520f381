"""Renderers of one Plan object: terminal text, markdown for pull requests, JSON.

Renderers format; they never compute (no diffing, no classification) and they only
ever see values the plan already masked.
"""
