"""Live twin: the city's sensors, feeds from them, synthetic records, the live loop (docs/live.md)."""
