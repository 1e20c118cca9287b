"""Tests of tinysplit.report."""
