"""lm_engine package (public API below)."""

__all__: list[str] = []
