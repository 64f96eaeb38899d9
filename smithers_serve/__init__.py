"""smithers_serve: arrives in a later issue."""

__all__: list[str] = []
