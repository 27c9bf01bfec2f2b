"""Calibration: read a CRM export through a mapping, audit every row, fit the funnel, write a calibration file.

It knows CRM data and statistics and imports nothing of the other layers but the scenario types it fills.
"""

from calibration.audit import REASONS, Audit, audit
from calibration.calibrate import Calibration, apply_calibration
from calibration.mapping import CalibrationError, Mapping, load_mapping, shipped_mappings
from calibration.reading import RawExport, read_export
from calibration.roster import read_roster

__all__ = [
    "REASONS",
    "Audit",
    "Calibration",
    "CalibrationError",
    "Mapping",
    "RawExport",
    "apply_calibration",
    "audit",
    "load_mapping",
    "read_export",
    "read_roster",
    "shipped_mappings",
]
