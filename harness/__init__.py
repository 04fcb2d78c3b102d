"""Tooling shared by the tests, the benchmarks and the docs; never installed with crm.

Importable from the top of the checkout (pytest, `python -m bench.<name>`, the docs scripts).
"""
