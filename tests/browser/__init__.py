"""Browser tests of the Client Portal and the Client Services console (issue 5)."""
