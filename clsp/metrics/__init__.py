"""Evaluation metrics: retrieval, classification, correlation, bootstrap intervals."""
