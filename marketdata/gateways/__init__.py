"""Market-data sources behind one `BarGateway` protocol (synthetic, IB; CSV is an import path)."""
