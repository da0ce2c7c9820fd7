"""Integration tier: one real service process (`python -m web`) at a time, on real databases."""
