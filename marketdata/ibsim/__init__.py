"""The IB Gateway simulator: TWS socket protocol over asyncio, backed by synthetic or CSV bars."""
