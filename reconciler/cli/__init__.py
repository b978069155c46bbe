"""The command line (thin: parse, call the engine, render)."""
