"""Helpers the tests share. Test modules import these, never each other nor conftest.py, which
keeps only fixtures."""
