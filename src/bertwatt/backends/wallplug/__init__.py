"""Wall-plug and BMC power meters: the whole machine as the wall socket sees it.

=========================== =================================================== ==============
driver                      reads                                               module
=========================== =================================================== ==============
``WallPlugBackend.shelly``  Shelly Gen2+ ``Switch.GetStatus``, Gen1 ``/status`` ``shelly.py``
``WallPlugBackend.tasmota`` Tasmota ``Status 8`` (+ its ``EnergyRes``)          ``tasmota.py``
``WallPlugBackend.redfish`` Redfish ``EnvironmentMetrics`` / ``Power``          ``redfish.py``
``WallPlugBackend.ipmi``    ``ipmitool dcmi power reading``, else SDR Watts     ``ipmi.py``
``WallPlugBackend.command`` any program printing ``123.4`` W or ``5678 J``      ``command.py``
``WallPlugBackend.http_json`` any JSON URL with ``watts=``/``energy_*=`` paths  ``http_json.py``
=========================== =================================================== ==============

``WallPlugBackend.from_source("shelly+http://192.168.1.50")`` builds any of them from one string
(:mod:`.source`), as ``bertwatt run --wallplug`` and ``BERTWATT_WALLPLUG`` do. Channels are
``wall:<device>`` (domain ``wall``, scope ``system``); they are compared with, never added to, the
component channels (:mod:`bertwatt.report.wall`).
"""

from __future__ import annotations

from bertwatt.backends.wallplug.backend import WallPlugBackend

__all__ = ["WallPlugBackend"]
