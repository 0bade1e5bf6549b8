"""Helpers shared by the tests: tiny models and audio corpora (``assets``), CLI runners (``cli``)."""
