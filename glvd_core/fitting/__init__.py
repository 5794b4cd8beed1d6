"""The fitting stage after the descent (numpy only): :func:`fit_to_photos` moves the result toward
the evidence in the user's photos; :class:`FitOptions` says how."""

from .options import FitOptions
from .pins import Pin, load_pins, parse_pins
from .solve import FitResult, ViewEvidence, fit_reconstruction, fit_to_photos

__all__ = ["FitOptions", "FitResult", "ViewEvidence", "fit_to_photos", "fit_reconstruction", "Pin", "load_pins",
           "parse_pins"]
