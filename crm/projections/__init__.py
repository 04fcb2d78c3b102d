"""Read models. Each projection is a table plus pure fold functions, one per event type it uses.

The live projector (projector.py) and replay (rebuild.py) drive the same functions.
"""
