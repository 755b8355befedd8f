"""Reports: the pydantic schema (``models``), building from a window (``build``), files
(``io``: atomic writes, loading, merging, CSV), text (``render``) and warnings (``checks``).

Nothing here is imported by ``import bertwatt``; pydantic loads when a report is first built.
"""
