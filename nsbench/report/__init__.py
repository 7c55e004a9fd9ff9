"""Reports: saved results -> pandas tables and matplotlib figures -> one self-contained, escaped HTML page."""
