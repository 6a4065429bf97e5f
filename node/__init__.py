"""A country's permitnet node: store, exchange with peers, REST API and web app."""

__all__: list[str] = []
