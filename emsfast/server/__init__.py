"""The broker daemon's orchestration layer (asyncio, pure Python)."""
