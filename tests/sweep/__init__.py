"""Tests of tinysplit.sweep and ``tinysplit sweep``."""
