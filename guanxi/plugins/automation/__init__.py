"""Marketing automation: segments (saved customer filters, dynamic or static), bulk sends (群发)
of one message to a segment over a channel, and journeys (multi-step flows per customer).

Each feature is a subpackage (``segments``, ``bulk``, ``journeys``); :mod:`.plugin` wires their
hooks, :mod:`.graphql` assembles their schema parts, :mod:`.permissions` their roles."""
