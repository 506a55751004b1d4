"""Client libraries: ``Client`` (blocking) and ``AsyncClient`` (asyncio), one protocol core."""
