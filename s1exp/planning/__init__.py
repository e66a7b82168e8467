"""Memory planning: the formulas (memory.py) behind `python -m s1exp.plan`."""
