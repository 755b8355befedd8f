"""Reports people look at: figures (``plot``), one self-contained HTML page (``html``), a paper's
energy statement (``statement``), runs side by side (``compare``) and terminal tables (``table``).

Nothing here is imported by ``import bertwatt``. matplotlib (the ``plot`` extra) is imported only
by :mod:`bertwatt.viz.plot`, with the Agg backend, when a figure is drawn; rich only by
:mod:`bertwatt.viz.table` when output goes to a terminal. Every number shown is read from a
report (or computed from its numbers, and then said so); nothing is filled in.
"""

__all__: list[str] = []  # public names live in plot, html, statement, compare, table
