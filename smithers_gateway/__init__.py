"""smithers_gateway: arrives in a later issue."""

__all__: list[str] = []
