"""smithers_server: arrives in a later issue."""

__all__: list[str] = []
