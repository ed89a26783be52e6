"""Building blocks shared by several models (colour conversion, frequency split, attention, scans)."""
