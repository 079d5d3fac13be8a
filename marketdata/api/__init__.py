"""The marketdata API (v1): series catalogue, bars, loads and CSV imports."""
