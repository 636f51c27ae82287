"""Segments: saved customer filters (and/or/not over core's customer filter, plugins' filter
fields, interaction history and consent), dynamic or static.

The in-plugin API other parts of automation (bulk sends, journeys) use is
:mod:`.service`: ``members_query``, ``contains``, ``refresh``, ``get_segment``."""
