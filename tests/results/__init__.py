"""Tests of tinysplit.results."""
